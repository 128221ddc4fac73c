"""Single-answer grading, MT-Bench style (``eval judge --mode single``): the judge rates each
answer 1-10 on its own, with FastChat's llm_judge prompts byte for byte (``single-v1``; with a
reference answer ``single-math-v1`` for the categories FastChat grades with references: math,
reasoning, coding; the ``-multi-turn`` variants for a second turn, which show the whole
conversation and ask about the second answer). The verdict is read as FastChat reads it (the
first ``[[8]]``, else the first ``[8]``), then, only where FastChat reads nothing, from ``[[8/10]]``,
``Rating: 8`` or ``8/10``; a judgment none of them reads is followed up in the same conversation,
then counted as a failure with score -1, never dropped.

Output: FastChat's single judgment format (``question_id, model, judge: [model, prompt],
user_prompt, judgment, score, turn``) plus ``meta``; the summary (``<output>.summary.json``) has
each model's mean score over all judged turns (FastChat's "Average"), per turn and per category,
with 95% bootstrap intervals over questions, and the radar chart per category.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import Question

NEED_REFERENCE = {"math", "reasoning", "coding", "arena-hard-200"}  # FastChat's NEED_REF_CATS
FOLLOWUP = ('Please output only your rating of the response on a scale of 1 to 10, strictly following this format: '
            '"[[rating]]", for example: "Rating: [[5]]".')
# FastChat's llm_judge/common.py, patterns verbatim: re.search, so the FIRST match, and the backup
# only when the first pattern matches nothing. The value is kept as written, as FastChat keeps it.
FASTCHAT_RULES = [("double_brackets", re.compile(r"\[\[(\d+\.?\d*)\]\]")),
                  ("single_brackets", re.compile(r"\[(\d+\.?\d*)\]"))]
_NUM = r"(\d+(?:\.\d+)?)"
# Ours, tried only where FastChat would record -1 (it reads none of these): the LAST value in 0..10,
# since the prose before a closing "Rating: 8" or "8/10" may quote other numbers.
EXTRA_RULES = [
    ("brackets_out_of_10", re.compile(r"\[\[?\s*" + _NUM + r"\s*(?:/\s*10\s*)?\]\]?")),  # "[[ 8 ]]", "[[9/10]]"
    ("rating_line", re.compile(r"rating\W{0,6}" + _NUM + r"(?:\s*/\s*10)?", re.IGNORECASE)),
    ("out_of_10", re.compile(_NUM + r"\s*/\s*10\b")),
]


@lru_cache(maxsize=1)
def judge_prompts() -> dict[str, dict]:
    text = resources.files("gpt4llm.prompts").joinpath("fastchat_single_judge.jsonl").read_text(encoding="utf-8")
    return {d["name"]: d for d in map(json.loads, text.splitlines()) if d}


def prompt_name(category: str | None, turn: int) -> str:
    return ("single-math-v1" if (category or "") in NEED_REFERENCE else "single-v1") + ("-multi-turn" if turn > 1 else "")


def parse_rating(text: str) -> tuple[float | None, str]:
    """(rating, rule) or (None, reason), as FastChat's ``run_judge_single`` reads it: the first
    ``[[n]]``, else the first ``[n]`` ("Rating: [[7]] ... the reference would get [[10]]" is 7;
    a judge that quotes the format's example "Rating: [[5]]" first gets 5, as in FastChat, so the
    scores stay comparable with its leaderboard). Only where FastChat finds nothing (and would record
    -1) does this read further: ``[[8/10]]`` or ``[[ 8 ]]``, a "Rating: 8" line, a closing "8/10",
    each the last value in 0..10."""
    text = text or ""
    for name, pattern in FASTCHAT_RULES:
        if m := pattern.search(text):
            v = float(m.group(1))
            return (int(v) if v.is_integer() else v), name
    for name, pattern in EXTRA_RULES:
        values = [v for v in (float(m.group(1)) for m in pattern.finditer(text)) if 0 <= v <= 10]
        if values:
            v = values[-1]
            return (int(v) if v.is_integer() else v), name
    return None, "no [[rating]] in the judgment"


def question_text(q: Question) -> str:
    return q.instruction + (f"\n\n{q.input}" if q.input else "")


def messages_for(q: Question, answer: list[str], reference: list[str] | None, turn: int) -> tuple[list[dict], str]:
    """FastChat's ``run_judge_single``: the system prompt, then the template filled in."""
    name = prompt_name(q.category, turn)
    p = judge_prompts()[name]
    kwargs: dict[str, Any] = {}
    if name.startswith("single-math"):
        kwargs["ref_answer_1"] = reference[0]
        if turn > 1:
            kwargs["ref_answer_2"] = reference[1]
    if turn > 1:
        user = p["prompt_template"].format(question_1=q.turns[0], question_2=q.turns[1], answer_1=answer[0],
                                           answer_2=answer[1], **kwargs)
    else:
        user = p["prompt_template"].format(question=question_text(q), answer=answer[0], **kwargs)
    return [{"role": "system", "content": p["system_prompt"]}, {"role": "user", "content": user}], name


def load_turns(path: str, qids: set, allow_missing: bool, what: str) -> tuple[str, dict[Any, list[str]]]:
    """(model_id, {question_id: turns}) of a FastChat answer file."""
    from gpt4llm.eval.questions import load_answer_file

    model_id, rows = load_answer_file(path, qids, allow_missing, what, verb="grade")
    return model_id, {qid: d["turns"] for qid, d in rows.items()}


def references_for(questions_arg: str, given: str | None) -> str | None:
    if given:
        return given
    from gpt4llm.eval.benchmarks import references_of

    return references_of(questions_arg)


def run(cfg, questions: list[Question], backend) -> "Any":
    from gpt4llm.backends.journal import Journal
    from gpt4llm.eval import judge_fingerprint
    from gpt4llm.stage import ask_until_parsed, journal_path

    qids = {q.question_id for q in questions}
    models = [load_turns(p, qids, cfg.allow_missing, "answer") for p in cfg.answers]
    need = [q for q in questions if (q.category or "") in NEED_REFERENCE]
    refs: dict[Any, list[str]] = {}
    ref_file = references_for(cfg.questions, cfg.references)
    if need:
        if not ref_file:
            raise UserError(f"{len(need)} questions ({', '.join(sorted({q.category for q in need}))}) are graded "
                            "against a reference answer (FastChat's single-math-v1): pass --references FILE "
                            "(FastChat reference answers, e.g. GPT-4's)")
        _, refs = load_turns(ref_file, {q.question_id for q in need}, False, "reference answer")
    items, meta = [], {}
    for model_id, answers in models:
        for q in questions:
            if q.question_id not in answers:
                continue
            a = answers[q.question_id]
            for turn in range(1, min(len(q.turns or [q.instruction]), 2) + 1):
                if len(a) < turn:
                    raise UserError(f"{model_id}: question {q.question_id} has {len(q.turns)} turns, the answer "
                                    f"{len(a)}; answer it again with gpt4llm answer")
                msgs, name = messages_for(q, a, refs.get(q.question_id), turn)
                tag = (model_id, q.question_id, turn)
                items.append((tag, msgs))
                meta[tag] = (q, name, msgs[1]["content"])
    with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
        asked, stats = ask_until_parsed(backend, journal, items, parse_rating, FOLLOWUP, params=cfg.params(),
                                        max_reasks=cfg.max_reasks, label=f"judge ({backend.model}, single)",
                                        quiet=cfg.quiet, prices=cfg.backend.prices_for(cfg.judge[0]), max_usd=cfg.max_usd)
    rows, errors = [], []
    for tag, _ in items:
        model_id, qid, turn = tag
        q, name, user = meta[tag]
        a = asked[tag]
        rows.append({"question_id": qid, "model": model_id, "judge": [backend.model, name], "user_prompt": user,
                     "judgment": a.text or "", "score": a.value if a.value is not None else -1, "turn": turn,
                     "meta": {"category": q.category, "parse_status": a.status, "parse_rule": a.rule,
                              "reason": a.reason or "", "attempts": a.attempts, "followups": a.followups,
                              "judge": f"{backend.kind}:{backend.model}",
                              "judgment_id": hashlib.sha256(f"{model_id}\0{qid}\0{turn}".encode()).hexdigest()[:22],
                              **({"judge_fingerprint": judge_fingerprint.make(
                                  cfg.judge[0], a.model_returned, a.system_fingerprint,
                                  judge_fingerprint.template_sha256(judge_prompts()[name], FOLLOWUP),
                                  cfg.params().as_dict())} if a.status in ("ok", "parse_failed") else {})}})
        if a.status in ("call_failed", "not_run"):
            errors.append({"model": model_id, "question_id": qid, "turn": turn, "error": a.reason or a.status})
    from gpt4llm.stage import write_errors

    io.write_records(cfg.output, rows)
    write_errors(cfg.output, errors)
    summaries = {m: summarize(rows_of, seed=0) for m, rows_of in _by_model(rows).items()}
    for s in summaries.values():
        s.update({"judge": f"{backend.kind}:{backend.model}", "mode": "single", "references": ref_file})
    io.write_json(Path(f"{cfg.output}.summary.json"), {"mode": "single", "models": summaries,
                                                        "calls": {"reasks": stats.reasks, "reasks_rescued": stats.rescued,
                                                                  "reask_cost_usd": stats.reask_cost_usd}})
    from gpt4llm import plots

    fig = plots.radar(summaries, Path(f"{cfg.output}.radar")) if summaries else []
    return SingleSummary(Path(cfg.output), summaries, fig, stats.calls, stats)


@dataclass
class SingleSummary:
    output: Path
    summaries: dict[str, dict]
    figure: list[Path]
    calls: Any
    asked: Any

    @property
    def call_failures(self) -> int:
        return sum(s["call_failures"] for s in self.summaries.values())


def _by_model(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["model"], []).append(r)
    return out


def _mean_ci(values: list[float], seed: int) -> dict:
    """Mean and 95% percentile-bootstrap interval (scipy, 1000 resamples)."""
    import numpy as np
    from scipy.stats import bootstrap

    if not values:
        return {"mean": None, "ci95": None, "n": 0}
    if len(values) < 2 or len(set(values)) == 1:
        return {"mean": round(float(np.mean(values)), 4), "ci95": [float(values[0])] * 2 if len(set(values)) == 1
                else None, "n": len(values)}
    r = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=1000, confidence_level=0.95,
                  method="percentile", random_state=np.random.default_rng(seed))
    return {"mean": round(float(np.mean(values)), 4),
            "ci95": [round(float(r.confidence_interval.low), 4), round(float(r.confidence_interval.high), 4)],
            "n": len(values)}


def summarize(rows: list[dict], seed: int = 0) -> dict:
    """One model's grades: FastChat's "Average" (the mean over every judged turn; -1 left out and
    counted), its interval from resampling questions (each question's mean over its turns), the
    mean per turn and per category."""
    scored = [r for r in rows if r["score"] != -1]
    per_q: dict[Any, list[float]] = {}
    for r in scored:
        per_q.setdefault(r["question_id"], []).append(r["score"])
    overall = _mean_ci([sum(v) / len(v) for v in per_q.values()], seed)
    overall["mean"] = round(sum(r["score"] for r in scored) / len(scored), 4) if scored else None
    turns = sorted({r["turn"] for r in rows})
    cats = sorted({(r["meta"] or {}).get("category") or "none" for r in rows})
    out = {"score": overall["mean"], "ci95": overall["ci95"], "judged": len(rows), "scored": len(scored),
           "parse_failures": sum(1 for r in rows if r["meta"]["parse_status"] == "parse_failed"),
           "call_failures": sum(1 for r in rows if r["meta"]["parse_status"] in ("call_failed", "not_run")),
           "reasks": sum(len(r["meta"].get("followups") or []) for r in rows),
           "turns": {str(t): _mean_ci([r["score"] for r in scored if r["turn"] == t], seed) for t in turns},
           "categories": {c: _mean_ci([r["score"] for r in scored if ((r["meta"] or {}).get("category") or "none") == c],
                                      seed) for c in cats},
           "questions": len({r["question_id"] for r in rows})}
    from gpt4llm.eval.verdict import MAX_PARSE_FAILURE_SHARE

    share = out["parse_failures"] / len(rows) if rows else 0
    out["reliability"] = {"unreliable": share > MAX_PARSE_FAILURE_SHARE,
                          "reasons": [f"parse failures {share:.0%} > {MAX_PARSE_FAILURE_SHARE:.0%}"]
                          if share > MAX_PARSE_FAILURE_SHARE else []}
    return out
