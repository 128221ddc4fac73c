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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpt4llm import io, plots
from gpt4llm.backends import DEFAULT_MODEL, parse_model
from gpt4llm.backends.base import GenParams
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats
from gpt4llm.errors import UserError
from gpt4llm.eval import families, judge_fingerprint
from gpt4llm.eval.questions import load_questions
from gpt4llm.io import write_json
from gpt4llm.schemas import Comparison, Question, ScoredResponse, record_id
from gpt4llm.scoring import parse_score, rationale
from gpt4llm.stats import read_scores, score_report
from gpt4llm.settings import USD, Opt, Settings
from gpt4llm.stage import AskStats, ModelCallSettings, ask_until_parsed, journal_path, open_backend, write_errors
from gpt4llm.templates import ALPACA

RATING = resources.files("gpt4llm.prompts").joinpath("rating.txt").read_text(encoding="utf-8")
# The follow-up turn when no rule reads a score (the judge's own reply stays in the conversation).
FOLLOWUP = ("Please output only the overall score of the response: a single line containing one value "
            "on the scale of 1 to 10, and nothing else.")


def rating_prompt(instruction: str, input: str, response: str) -> str:
    """The paper's rating prompt, byte for byte; the input, if any, follows the instruction."""
    task = f"{instruction}\n\n{input}" if input else instruction
    return RATING.replace("{instruction}", task, 1).replace("{response}", response, 1)


class Source(BaseModel):
    """A source of responses in the pipeline: the teacher's own answers, or a model that answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str | None = None
    """The model that answers; omitted: the teacher's own answers from the generate stage."""
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_model(v, "model")
            except UserError as e:
                raise ValueError(str(e).removeprefix("model ")) from None
        return v


class CompareSettings(ModelCallSettings):
    """gpt4llm compare: a judge scores each of K models' responses on its own, 1-10 (the paper's comparison data)."""

    instructions: Annotated[str | None, Opt("-i", pipeline=True)] = None
    """The prompts: Alpaca records or FastChat questions."""
    responses: Annotated[list[str] | None, Opt("-r", pipeline=True)] = None
    """A response file per source (give 2 or more times): Alpaca with output, or FastChat answers."""
    output: Annotated[Path | None, Opt("-o", pipeline=True)] = None
    """Comparison file (the paper's v2 format, JSONL or .json)."""
    judge: Annotated[list[str], Opt(pipeline=True)] = [DEFAULT_MODEL]
    """The judge model (the paper: GPT-4; pipeline: models.judge); repeat for a panel: each judge scores every response (<output stem>_<judge> files), the output holds the mean of their scores."""
    family: list[str] | None = None
    """PATTERN=FAMILY (repeat): a source's family for the self-preference check, before the built-in table (eval judge --family)."""
    source_names: Annotated[str | None, Opt(pipeline=True)] = None
    """Comma-separated names of the sources, in --responses order (default: meta.model / model_id, else the file name)."""
    sources: Annotated[list[Source] | None, Opt(cli=False)] = None
    """Pipeline: the K sources, 2 or more: {name} for the teacher's own answers, {name, model, temperature, top_p, max_tokens} for a model that answers."""
    allow_missing: Annotated[bool, Opt(pipeline=True)] = False
    """Score what is there when a source lacks some prompts (else stop and list them)."""
    max_reasks: int = Field(2, ge=0)
    """Follow-ups in the same conversation when no rule reads a valid score from the judge's reply."""
    temperature: float = Field(0.2, ge=0, le=2)
    """Judge temperature (not published; Vicuna's reviewer: 0.2)."""
    max_tokens: int = Field(1024, ge=1)
    """Judge max tokens (Vicuna's reviewer: 1024)."""
    max_usd: USD = None
    """Budget cap for the judge, follow-ups included (exit 3 when reached)."""
    score_mode: Literal["text", "logprobs"] = "text"
    """text: parse the judge's reply (the paper); logprobs: a local judge's expected score over score tokens."""

    @field_validator("judge", mode="before")
    @classmethod
    def _judges(cls, v: Any) -> Any:
        v = [v] if isinstance(v, str) else v
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("name each judge once, at least one")
        return v

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[Source] | None) -> list[Source] | None:
        if v is not None:
            if len(v) < 2:
                raise ValueError("give at least 2 sources to compare")
            names = [s.name for s in v]
            if len(set(names)) != len(names):
                raise ValueError(f"source names must differ: {names}")
        return v

    def params(self) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens)


@dataclass
class CompareSummary:
    output: Path
    written: int
    report: dict
    figure: list[Path]
    call_failures: int
    calls: CallStats
    panel: dict | None = None
    """A panel's judges, files, per-judge reports and agreement (``compare_panel``)."""


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


def load_sources(cfg: CompareSettings, questions: list[Question]) -> dict[str, dict[Any, str]]:
    if len(cfg.responses) < 2:
        raise UserError("--responses: give at least 2 response files to compare")
    names = cfg.source_names.split(",") if cfg.source_names else None
    if names and len(names) != len(cfg.responses):
        raise UserError(f"--source-names: {len(names)} names for {len(cfg.responses)} response files")
    sources: dict[str, dict[Any, str]] = {}
    for i, path in enumerate(cfg.responses):
        rows, own = _source_rows(path)
        name = names[i] if names else (own or Path(path).stem)
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


def check_inputs(cfg: CompareSettings) -> None:
    if not cfg.instructions or not cfg.responses or not cfg.output:
        raise UserError("compare needs --instructions, --responses (2 or more) and --output")


def run(cfg: CompareSettings, budget=None) -> CompareSummary:
    """Score with one judge (a panel of several goes through ``compare_panel.run``, which calls this
    once per judge)."""
    check_inputs(cfg)
    if len(cfg.judge) != 1:
        raise ValueError("compare.run scores with one judge; compare_panel.run takes a panel")
    questions = load_questions(cfg.instructions)
    sources = load_sources(cfg, questions)
    backend = open_backend(cfg.judge[0], "--judge", cfg.backend, bulk=True, quiet=cfg.quiet, output=cfg.output)
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
    results, asked = rate(cfg, items, backend, budget)
    return _write(cfg, questions, items, results, identical, backend, asked)


def rate(cfg: CompareSettings, items: list[tuple[Question, str, str]], backend,
         budget=None) -> tuple[dict[tuple, dict], AskStats]:
    """Score each ``(question, source name, response)`` on its own with the paper's rating prompt (text
    or logprobs, as ``cfg.score_mode`` says), through the journal: ``{(question_id, name): result}``
    with ``status`` ok (``score``), parse_failed, call_failed or not_run. Also ``train iterate``'s judge."""
    results: dict[tuple, dict] = {}
    asked = AskStats(None)
    if cfg.score_mode == "logprobs":
        from gpt4llm.logprob_scores import expected_scores, journaled, masses, score_text

        chats = [[{"role": "user", "content": rating_prompt(q.instruction, q.input, t)}] for q, _, t in items]
        with Journal(cfg.journal or journal_path(cfg.output)) as journal:  # a re-run computes none again
            texts = journaled(journal, cfg.judge[0], chats, "score", lambda todo: [
                score_text(e) for e in expected_scores(cfg.judge[0], todo, batch_size=cfg.backend.batch_size)])
        from gpt4llm.backends.local import weights_fingerprint

        who = {"model_returned": f"local:{backend.model}", "system_fingerprint": weights_fingerprint(backend.model)}
        for (q, name, _), text in zip(items, texts):
            score, rule = parse_score(text)
            results[(q.question_id, name)] = ({"status": "ok", "score": score, "rationale": rationale(text), "attempts": 1,
                                               "parse_rule": "logprobs", "score_mass": round(masses(text)[0], 6), **who}
                                              if score is not None else
                                              {"status": "parse_failed", "reason": "no probability on score tokens",
                                               "raw": text, "attempts": 1, **who})
    else:
        with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
            answers, asked = ask_until_parsed(
                backend, journal,
                [((q.question_id, name), [{"role": "user", "content": rating_prompt(q.instruction, q.input, text)}])
                 for q, name, text in items],
                parse_score, FOLLOWUP, params=cfg.params(), max_reasks=cfg.max_reasks,
                label=f"compare (judge {backend.model})", quiet=cfg.quiet, prices=cfg.backend.prices_for(cfg.judge[0]),
                max_usd=cfg.max_usd, budget=budget)
        for key, a in answers.items():
            who = {"model_returned": a.model_returned, "system_fingerprint": a.system_fingerprint}
            if a.status == "ok":
                results[key] = {"status": "ok", "score": a.value, "rationale": rationale(a.text), "attempts": a.attempts,
                                "parse_rule": a.rule, **({"followups": a.followups} if a.followups else {}), **who}
            elif a.status == "parse_failed":
                results[key] = {"status": "parse_failed", "reason": a.reason, "raw": a.text, "attempts": a.attempts,
                                **({"followups": a.followups} if a.followups else {}), **who}
            else:
                results[key] = {"status": a.status, "reason": a.reason}
    return results, asked


WHO = ("model_returned", "system_fingerprint")  # which model answered a rating call, as the endpoint said


def fingerprint(cfg: CompareSettings, results: list[dict]) -> dict:
    """The judge of one record's scores (``eval.judge_fingerprint``); calls that disagree on the
    returned model or system fingerprint show every value, sorted, joined by " | "."""
    def joined(k):
        values = sorted({r.get(k) for r in results if r.get(k)})
        return " | ".join(values) if values else None

    return judge_fingerprint.make(cfg.judge[0], joined("model_returned"), joined("system_fingerprint"),
                                  judge_fingerprint.template_sha256(RATING, FOLLOWUP),
                                  {**cfg.params().as_dict(), "score_mode": cfg.score_mode})


def self_preference(cfg: CompareSettings, per_judge: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Judges that share a name or family with a source, and that source's mean score by each judge."""
    overrides = families.parse_overrides(cfg.family)
    sources = list(next(iter(per_judge.values())))
    out = []
    for f in families.flags([j for j in per_judge if not j.startswith("panel")], sources, None, overrides):
        out.append({**f, "mean_score_by_judge": {j: round(statistics.fmean(s[f["model"]]), 4) if s.get(f["model"])
                                                 else None for j, s in per_judge.items()}})
    return out


def _write(cfg, questions, items, results, identical, backend, asked: AskStats) -> CompareSummary:
    by_q: dict[Any, list] = {}
    for q, name, text in items:
        by_q.setdefault(q.question_id, []).append((name, text, results.get((q.question_id, name), {"status": "not_run"})))
    out, errors, skipped = [], [], 0
    for q in questions:
        entries = by_q.get(q.question_id, [])
        scored = [ScoredResponse(response=t, score=r["score"], source=n) for n, t, r in entries if r["status"] == "ok"]
        failed = [{"source": n, "response": t, **{k: v for k, v in r.items() if k not in WHO}} for n, t, r in entries
                  if r["status"] != "ok"]
        errors += [{"question_id": q.question_id, **f} for f in failed if f["status"] in ("call_failed", "not_run")]
        if len(scored) < 2:
            skipped += 1
            continue
        out.append(Comparison(
            user_input=ALPACA.prompt(q.instruction, q.input), responses_and_scores=scored, id=str(q.question_id),
            meta={"judge": f"{backend.kind}:{backend.model}", "question_id": q.question_id,
                  "rationales": {n: r.get("rationale", "") for n, _, r in entries if r["status"] == "ok"},
                  "failed": failed, "identical_removed": identical.get(q.question_id, 0),
                  "judge_fingerprint": fingerprint(cfg, [r for _, _, r in entries if r["status"] == "ok"])}).model_dump())
    io.write_records(cfg.output, out)
    write_errors(cfg.output, errors)
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
    report["judge_fingerprint"] = judge_fingerprint.describe([(rec["meta"]["judge_fingerprint"], rec["id"]) for rec in out])
    report["self_preference"] = self_preference(cfg, {cfg.judge[0]: per_source})
    masses = [r["score_mass"] for r in results.values() if "score_mass" in r]
    if masses:
        report["mean_score_token_mass"] = round(statistics.fmean(masses), 6)
    write_json(Path(f"{cfg.output}.report.json"), report)
    fig = plots.score_kde(per_source, Path(f"{cfg.output}.scores")) if per_source else []
    return CompareSummary(Path(cfg.output), len(out), report, fig, report["call_failures"], asked.calls)


class ReportSettings(Settings):
    """gpt4llm compare report: the quality report and score-KDE figure of a comparison file or a dict of score lists."""

    output_dir: Annotated[Path, Opt("-o")]
    """Where score_report.json and the figure go."""
    input: Annotated[str | None, Opt("-i")] = None
    """Comparison v2 file."""
    scores: Path | None = None
    """A JSON dict of score lists per source (the paper's cmp_data_scores.json)."""


def report(cfg: ReportSettings) -> tuple[dict, list[Path]]:
    """The quality report of a comparison file, or of the paper's released score lists."""
    from gpt4llm.pairs import load_comparisons

    if bool(cfg.input) == bool(cfg.scores):
        raise UserError("compare report: give exactly one of --input or --scores")
    if cfg.scores:
        per_source = read_scores(str(cfg.scores))
    else:
        per_source = {}
        for c in load_comparisons(cfg.input):
            for x in c.responses_and_scores:
                per_source.setdefault(x.source, []).append(x.score)
    out = score_report(per_source)
    write_json(cfg.output_dir / "score_report.json", out)
    figs = plots.score_kde(per_source, cfg.output_dir / "score_distribution")
    return out, [cfg.output_dir / "score_report.json", *figs]
