"""``gpt4llm eval judge``: an LLM judge compares a model's answers with a reference model's on a
question set, with Vicuna's reviewer (PAPER.md section 5), and reports the paper's metric.

``--orders paper``: one order, the evaluated model as Assistant 1 (the paper's protocol).
``--orders both`` (default): also the swapped order; each question's scores are averaged over
the two orders and the flip rate (winner changes with the order) is reported. A verdict whose
first line does not hold two scores is re-asked, then reported as a failure, never dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt4llm import io, plots
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats, run_calls
from gpt4llm.errors import UserError
from gpt4llm.eval.questions import load_questions
from gpt4llm.eval.verdict import parse_verdict, review_messages, reviewers, summarize
from gpt4llm.generate import errors_path, journal_path, open_backend


@dataclass
class JudgeConfig:
    questions: str
    answers: list[str]
    """One or more FastChat answer files of the evaluated models."""
    reference: str
    """The reference model's answers (the paper: GPT-4 or ChatGPT)."""
    output: Path
    """Reviews (FastChat review format) of every model; summaries go to <output>.summary.json."""
    judge: str = DEFAULT_MODEL
    orders: str = "both"
    max_reasks: int = 2
    params: GenParams = field(default_factory=lambda: GenParams(temperature=0.2, top_p=1.0, max_tokens=1024))
    """Vicuna's reviewer settings: temperature 0.2, max_tokens 1024."""
    allow_missing: bool = False
    journal: Path | None = None
    backend_options: dict = field(default_factory=dict)
    max_usd: float | None = None
    quiet: bool = False
    score_mode: str = "text"
    """text: parse the judge's review (the paper); logprobs: a local judge's expected scores."""


@dataclass
class JudgeSummary:
    output: Path
    summaries: dict[str, dict]
    figure: list[Path]
    calls: CallStats | None


def load_answers(path: str, question_ids: set, allow_missing: bool) -> tuple[str, dict[Any, dict]]:
    """(model_id, {question_id: answer}) of a FastChat answer file; the first sample per question."""
    rows, model_id = {}, None
    for row in io.read_rows(path):
        d = row.data
        if not (isinstance(d, dict) and "question_id" in d and isinstance(d.get("text"), str)):
            raise UserError(f"{row.where}: not a FastChat answer (question_id, text)")
        if d["question_id"] in rows or (d.get("meta") or {}).get("sample", 0) != 0:
            continue
        rows[d["question_id"]] = d
        model_id = model_id or d.get("model_id")
    missing = sorted((q for q in question_ids if q not in rows), key=str)
    if missing and not allow_missing:
        shown = ", ".join(map(str, missing[:10]))
        raise UserError(f"{path}: no answer for {len(missing)} of {len(question_ids)} questions (question_id "
                        f"{shown}{' ...' if len(missing) > 10 else ''}); pass --allow-missing to judge what is there")
    return model_id or Path(path).stem, rows


def reviewer_id(judge_model: str, prompt_id: int) -> str:
    if judge_model.startswith("gpt-4"):
        return reviewers()[prompt_id]["reviewer_id"]  # FastChat's ids, e.g. gpt-4-0328-default
    return f"{judge_model}-{reviewers()[prompt_id]['category']}"


def run(cfg: JudgeConfig) -> JudgeSummary:
    if cfg.orders not in ("both", "paper"):
        raise UserError(f"--orders {cfg.orders}: use both or paper")
    questions = load_questions(cfg.questions)
    qids = {q.question_id for q in questions}
    ref_id, ref = load_answers(cfg.reference, qids, cfg.allow_missing)
    models = [load_answers(p, qids, cfg.allow_missing) for p in cfg.answers]
    backend = open_backend(cfg.judge, "--judge", cfg.backend_options, False)
    orders = (0, 1) if cfg.orders == "both" else (0,)
    items = []  # (model_id, question, order, answer1, answer2)
    for model_id, answers in models:
        for q in questions:
            if q.question_id in answers and q.question_id in ref:
                a, b = answers[q.question_id], ref[q.question_id]
                for o in orders:
                    items.append((model_id, q, o, a, b) if o == 0 else (model_id, q, o, b, a))
    verdicts: dict[tuple, dict] = {}
    pending, stats = items, None
    if cfg.score_mode not in ("text", "logprobs"):
        raise UserError(f"--score-mode {cfg.score_mode}: use text or logprobs")
    if cfg.score_mode == "logprobs":
        from gpt4llm.logprob_scores import verdict_texts

        chats, pids = [], []
        for it in items:
            question = it[1].instruction + (f"\n\n{it[1].input}" if it[1].input else "")
            msgs, pid = review_messages(it[1].category, question, it[3]["text"], it[4]["text"])
            chats.append(msgs)
            pids.append(pid)
        for it, pid, text in zip(items, pids, verdict_texts(cfg.judge, chats, cfg.backend_options.get("batch_size") or 8)):
            score, why = parse_verdict(text)
            verdicts[(it[0], it[1].question_id, it[2])] = {"status": "ok" if score else "parse_failed", "score": score,
                                                           "reason": why, "text": text, "pid": pid, "attempts": 1}
        pending = []
    with Journal(cfg.journal or journal_path(cfg.output)) as journal:
        for attempt in range(cfg.max_reasks + 1):
            if not pending:
                break
            reqs = []
            for it in pending:
                question = it[1].instruction + (f"\n\n{it[1].input}" if it[1].input else "")
                msgs, pid = review_messages(it[1].category, question, it[3]["text"], it[4]["text"])
                reqs.append(Request(params=cfg.params, messages=msgs, sample=attempt, tag=(it, pid)))
            stats = run_calls(backend, journal, reqs, label=f"judge ({backend.model}, try {attempt + 1})",
                              quiet=cfg.quiet, max_usd=cfg.max_usd)
            retry = []
            for r in reqs:
                it, pid = r.tag
                e = stats.entries.get(r.key)
                key = (it[0], it[1].question_id, it[2])
                if e is None or not e.ok:
                    verdicts[key] = {"status": "call_failed", "reason": e.error if e else "not run", "pid": pid, "text": ""}
                    continue
                score, why = parse_verdict(e.text)
                verdicts[key] = {"status": "ok" if score else "parse_failed", "score": score, "reason": why,
                                 "text": e.text, "pid": pid, "attempts": attempt + 1}
                if score is None:
                    retry.append(it)
            pending = retry
            if stats.budget_reached:
                break
    return _write(cfg, questions, items, verdicts, backend, ref_id, stats)


def _write(cfg, questions, items, verdicts, backend, ref_id, stats) -> JudgeSummary:
    reviews, errors = [], []
    for model_id, q, o, a1, a2 in items:
        v = verdicts.get((model_id, q.question_id, o), {"status": "not_run", "reason": "not run", "pid": 1, "text": ""})
        rid = hashlib.sha256(f"{model_id}\0{q.question_id}\0{o}\0{backend.model}".encode()).hexdigest()[:22]
        reviews.append({"review_id": rid, "question_id": q.question_id, "answer1_id": a1.get("answer_id"),
                        "answer2_id": a2.get("answer_id"), "reviewer_id": reviewer_id(backend.model, v["pid"]),
                        "metadata": {}, "text": v["text"],
                        "score": v.get("score") or [-1, -1],  # FastChat's mark of an unparsed verdict
                        "meta": {"model_id": model_id, "reference_id": ref_id, "order": "model_first" if o == 0 else "reference_first",
                                 "parse_status": v["status"], "reason": v["reason"], "attempts": v.get("attempts"),
                                 "judge": f"{backend.kind}:{backend.model}", "category": q.category}})
        if v["status"] == "call_failed":
            errors.append({"model_id": model_id, "question_id": q.question_id, "order": o, "error": v["reason"]})
    io.write_records(cfg.output, reviews)
    err = errors_path(Path(cfg.output))
    if errors:
        io.write_records(err, errors, "jsonl")
    elif err.exists():
        err.unlink()
    summaries = {}
    for model_id in dict.fromkeys(r["meta"]["model_id"] for r in reviews):
        summaries[model_id] = summarize_reviews([r for r in reviews if r["meta"]["model_id"] == model_id], questions)
        summaries[model_id].update({"reference": ref_id, "judge": f"{backend.kind}:{backend.model}", "orders": cfg.orders})
    io.write_json(Path(f"{cfg.output}.summary.json"), {"models": summaries})
    drawable = {m: s for m, s in summaries.items() if s["ratio_percent"] is not None}
    fig = plots.judge_bars(drawable, Path(f"{cfg.output}.chart"), ref_id) if drawable else []
    return JudgeSummary(Path(cfg.output), summaries, fig, stats)


def summarize_reviews(reviews: list[dict], questions=None) -> dict:
    """Per-question rows from reviews of one model (any order mix), then ``summarize``."""
    category = {q.question_id: q.category for q in questions or []}
    per_q: dict[Any, list] = {}
    for r in reviews:
        s = r.get("score")
        ok = isinstance(s, list) and len(s) == 2 and min(s) >= 0
        order = (r.get("meta") or {}).get("order", "model_first")
        pair = None if not ok else (s[0], s[1]) if order == "model_first" else (s[1], s[0])  # (model, reference)
        per_q.setdefault(r["question_id"], []).append(pair)
    rows = []
    for qid, pairs in per_q.items():
        good = [p for p in pairs if p is not None]
        rows.append({"question_id": qid, "category": category.get(qid) or next(
            (r.get("meta", {}).get("category") for r in reviews if r["question_id"] == qid), None),
            "model": sum(p[0] for p in good) / len(good) if good else None,
            "reference": sum(p[1] for p in good) / len(good) if good else None,
            "orders": good})
    out = summarize(rows)
    out["partially_parsed_questions"] = sum(1 for p in per_q.values() if 0 < sum(x is not None for x in p) < len(p))
    return out


def import_reviews(path: str, questions: str | None = None) -> dict:
    """The summary of an existing FastChat review file (the evaluated model as Assistant 1)."""
    rows = []
    for row in io.read_rows(path):
        d = row.data
        if not (isinstance(d, dict) and "question_id" in d and "score" in d):
            raise UserError(f"{row.where}: not a FastChat review (question_id, score)")
        s = d["score"]
        if not (isinstance(s, list) and len(s) == 2 and all(isinstance(x, (int, float)) for x in s)):
            raise UserError(f"{row.where}: 'score' must be a list of two numbers, got {s!r}")
        rows.append(d)
    return summarize_reviews(rows, load_questions(questions) if questions else None)
