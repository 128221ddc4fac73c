"""``gpt4llm compare``: a judge scores each of K models' responses on its own, 1 to 10, with the
paper's rating prompt (PAPER.md section 2); the output is the paper's comparison v2 format.

Load: the instructions and K response files (Alpaca with ``output``, or FastChat answers),
joined by id / question_id; identical responses to one prompt are scored once (the released
data has 1,665 such pairs). Do: one rating call per response through the journal; the score is
read from the first line, else from the last explicit score (``scoring``); a reply no rule reads
is followed up in the same conversation up to ``max_reasks`` times (``stage.ask_until_parsed``),
then the response is marked failed with the judge's text kept; no default score is ever substituted.
Write: v2 records, ``<output>.report.json`` (the quality report) and the score-KDE figure.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gpt4llm import io, plots
from gpt4llm.io import write_json
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats, run_calls
from gpt4llm.errors import UserError
from gpt4llm.eval.questions import load_questions
from gpt4llm.generate import errors_path, journal_path, open_backend
from gpt4llm.schemas import Question, record_id
from gpt4llm.scoring import parse_score, rationale
from gpt4llm.stage import AskStats, ask_until_parsed
from gpt4llm.templates import ALPACA

RATING = resources.files("gpt4llm.prompts").joinpath("rating.txt").read_text(encoding="utf-8")
# The follow-up turn when no rule reads a score (the judge's own reply stays in the conversation).
FOLLOWUP = ("Please output only the overall score of the response: a single line containing one value "
            "on the scale of 1 to 10, and nothing else.")


def rating_prompt(instruction: str, input: str, response: str) -> str:
    """The paper's rating prompt, byte for byte; the input, if any, follows the instruction."""
    task = f"{instruction}\n\n{input}" if input else instruction
    return RATING.replace("{instruction}", task, 1).replace("{response}", response, 1)


@dataclass
class CompareConfig:
    instructions: str
    """The prompts: Alpaca records, or a FastChat question file."""
    responses: list[str]
    """K files of responses to them: Alpaca with output, or FastChat answers."""
    output: Path
    """The comparison file (GPT-4-LLM v2 format, JSONL or .json)."""
    judge: str = DEFAULT_MODEL
    source_names: list[str] | None = None
    """Names of the K sources (default: meta.model / model_id, else the file name)."""
    allow_missing: bool = False
    """Score what is there when a source lacks some prompts (else stop and list them)."""
    max_reasks: int = 2
    """Follow-ups when no rule reads a valid score from the judge's reply."""
    params: GenParams = field(default_factory=lambda: GenParams(temperature=0.2, top_p=1.0, max_tokens=1024))
    """Judge decoding; the paper does not publish it: Vicuna's reviewer settings (0.2, 1024)."""
    journal: Path | None = None
    backend_options: dict = field(default_factory=dict)
    max_usd: float | None = None
    prices: Any = None
    quiet: bool = False
    score_mode: str = "text"
    """text: parse the judge's reply (the paper); logprobs: a local judge's expected score (see logprob_scores)."""


@dataclass
class CompareSummary:
    output: Path
    written: int
    report: dict
    figure: list[Path]
    call_failures: int
    calls: CallStats


def _source_rows(path: str) -> tuple[dict[Any, str], str | None]:
    """{question key: response text} and the source's own name, from one response file."""
    out, name = {}, None
    for row in io.read_rows(path):
        d = row.data
        if not isinstance(d, dict):
            raise UserError(f"{row.where}: expected a JSON object")
        if "question_id" in d and isinstance(d.get("text"), str):  # FastChat answer
            if (d.get("meta") or {}).get("sample", 0) != 0 or d["question_id"] in out:
                continue  # the first sample answers; the others are for best-of-N
            out[d["question_id"]] = d["text"]
            name = name or d.get("model_id")
        elif isinstance(d.get("instruction"), str) and isinstance(d.get("output"), str):  # Alpaca
            key = d.get("id") or record_id(d["instruction"], d.get("input") or "")
            out[key] = d["output"]
            name = name or (d.get("meta") or {}).get("model")
        else:
            raise UserError(f"{row.where}: not a response: expected a FastChat answer (question_id, text) "
                            "or an Alpaca record with output")
    return out, name


def load_sources(cfg: CompareConfig, questions: list[Question]) -> dict[str, dict[Any, str]]:
    if len(cfg.responses) < 2:
        raise UserError("--responses: give at least 2 response files to compare")
    if cfg.source_names and len(cfg.source_names) != len(cfg.responses):
        raise UserError(f"--source-names: {len(cfg.source_names)} names for {len(cfg.responses)} response files")
    sources: dict[str, dict[Any, str]] = {}
    for i, path in enumerate(cfg.responses):
        rows, own = _source_rows(path)
        name = cfg.source_names[i] if cfg.source_names else (own or Path(path).stem)
        if name in sources:
            raise UserError(f"{path}: source name {name!r} is used twice; pass --source-names")
        keys = {q.question_id for q in questions}
        missing = [k for k in keys if k not in rows]
        if missing and not cfg.allow_missing:
            shown = ", ".join(map(str, sorted(missing, key=str)[:10]))
            raise UserError(f"{path}: no response for {len(missing)} of {len(keys)} prompts (ids {shown}"
                            f"{' ...' if len(missing) > 10 else ''}); pass --allow-missing to score what is there")
        sources[name] = rows
    return sources


def run(cfg: CompareConfig) -> CompareSummary:
    if cfg.max_reasks < 0:
        raise UserError(f"--max-reasks {cfg.max_reasks}: must be >= 0")
    questions = load_questions(cfg.instructions)
    sources = load_sources(cfg, questions)
    backend = open_backend(cfg.judge, "--judge", cfg.backend_options, False)
    # Per prompt: the responses to score, identical texts once (the first source keeps it).
    items, identical = [], Counter()
    for q in questions:
        seen: dict[str, str] = {}
        for name, rows in sources.items():
            text = rows.get(q.question_id)
            if text is None:
                continue
            if text in seen:
                identical[q.question_id] += 1
                continue
            seen[text] = name
            items.append((q, name, text))
    results: dict[tuple, dict] = {}
    asked = AskStats(None)
    if cfg.score_mode not in ("text", "logprobs"):
        raise UserError(f"--score-mode {cfg.score_mode}: use text or logprobs")
    if cfg.score_mode == "logprobs":
        from gpt4llm.logprob_scores import expected_scores, score_text

        chats = [[{"role": "user", "content": rating_prompt(q.instruction, q.input, t)}] for q, _, t in items]
        for (q, name, _), e in zip(items, expected_scores(cfg.judge, chats, batch_size=cfg.backend_options.get("batch_size") or 8)):
            text = score_text(e)
            score, rule = parse_score(text)
            results[(q.question_id, name)] = ({"status": "ok", "score": score, "rationale": rationale(text), "attempts": 1,
                                               "parse_rule": "logprobs", "score_mass": round(e.mass, 6)}
                                              if score is not None else
                                              {"status": "parse_failed", "reason": "no probability on score tokens",
                                               "raw": text, "attempts": 1})
    else:
        with Journal(cfg.journal or journal_path(cfg.output)) as journal:
            answers, asked = ask_until_parsed(
                backend, journal,
                [((q.question_id, name), [{"role": "user", "content": rating_prompt(q.instruction, q.input, text)}])
                 for q, name, text in items],
                parse_score, FOLLOWUP, params=cfg.params, max_reasks=cfg.max_reasks,
                label=f"compare (judge {backend.model})", quiet=cfg.quiet, prices=cfg.prices, max_usd=cfg.max_usd)
        for key, a in answers.items():
            if a.status == "ok":
                results[key] = {"status": "ok", "score": a.value, "rationale": rationale(a.text), "attempts": a.attempts,
                                "parse_rule": a.rule, **({"followups": a.followups} if a.followups else {})}
            elif a.status == "parse_failed":
                results[key] = {"status": "parse_failed", "reason": a.reason, "raw": a.text, "attempts": a.attempts,
                                **({"followups": a.followups} if a.followups else {})}
            else:
                results[key] = {"status": a.status, "reason": a.reason}
    return _write(cfg, questions, items, results, identical, backend, asked)


def _write(cfg, questions, items, results, identical, backend, asked: AskStats) -> CompareSummary:
    by_q: dict[Any, list] = {}
    for q, name, text in items:
        by_q.setdefault(q.question_id, []).append((name, text, results.get((q.question_id, name), {"status": "not_run"})))
    out, errors, skipped = [], [], 0
    for q in questions:
        entries = by_q.get(q.question_id, [])
        scored = [{"response": t, "score": r["score"], "source": n} for n, t, r in entries if r["status"] == "ok"]
        failed = [{"source": n, "response": t, **r} for n, t, r in entries if r["status"] != "ok"]
        errors += [{"question_id": q.question_id, **f} for f in failed if f["status"] in ("call_failed", "not_run")]
        if len(scored) < 2:
            skipped += 1
            continue
        out.append({"user_input": ALPACA.prompt(q.instruction, q.input), "responses_and_scores": scored,
                    "id": str(q.question_id),
                    "meta": {"judge": f"{backend.kind}:{backend.model}", "question_id": q.question_id,
                             "rationales": {n: r.get("rationale", "") for n, _, r in entries if r["status"] == "ok"},
                             "failed": failed, "identical_removed": identical.get(q.question_id, 0)}})
    io.write_records(cfg.output, out)
    err = errors_path(Path(cfg.output))
    if errors:
        io.write_records(err, errors, "jsonl")
    elif err.exists():
        err.unlink()
    per_source: dict[str, list[float]] = {}
    for rec in out:
        for x in rec["responses_and_scores"]:
            per_source.setdefault(x["source"], []).append(x["score"])
    report = score_report(per_source)
    report["prompts"] = len(questions)
    report["prompts_written"] = len(out)
    report["prompts_skipped_fewer_than_2_scored"] = skipped
    report["identical_responses_removed"] = sum(identical.values())
    report["parse_failures"] = sum(1 for r in results.values() if r["status"] == "parse_failed")
    report["call_failures"] = sum(1 for r in results.values() if r["status"] == "call_failed")
    report["not_run_budget"] = sum(1 for r in results.values() if r["status"] == "not_run")
    report["parse_rules"] = dict(Counter(r["parse_rule"] for r in results.values() if r["status"] == "ok"))
    report["reasks"] = asked.reasks
    report["reasks_rescued"] = asked.rescued
    report["reask_cost_usd"] = asked.reask_cost_usd
    report["ties"] = sum(1 for rec in out for i, a in enumerate(rec["responses_and_scores"])
                         for b in rec["responses_and_scores"][i + 1:] if a["score"] == b["score"])
    report["score_mode"] = cfg.score_mode
    masses = [r["score_mass"] for r in results.values() if "score_mass" in r]
    if masses:
        report["mean_score_token_mass"] = round(statistics.fmean(masses), 6)
    write_json(Path(f"{cfg.output}.report.json"), report)
    fig = plots.score_kde(per_source, Path(f"{cfg.output}.scores")) if per_source else []
    return CompareSummary(Path(cfg.output), len(out), report, fig, report["call_failures"], asked.calls)


def score_report(scores: dict[str, list[float]]) -> dict:
    """Per source: n, mean, median, histogram over 1..10, and how centralized (the most common
    score's share; the paper calls GPT-4's 89.5% of 9s "very centralized")."""
    sources = {}
    for name, values in scores.items():
        if not values:
            continue
        counts = Counter(values)
        mode, mode_n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        sources[name] = {"n": len(values), "mean": round(statistics.fmean(values), 4),
                         "median": statistics.median(values),
                         "histogram": {f"{k:g}": counts[k] for k in sorted(counts)},
                         "most_common_score": mode, "most_common_share": round(mode_n / len(values), 4)}
    return {"sources": sources}
