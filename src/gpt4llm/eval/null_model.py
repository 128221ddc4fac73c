"""The null-model exploit test (issue 21): a contender that gives the same answer to every question,
judged like any other model, after Zheng et al. 2024, "Cheating Automatic LLM Benchmarks: Null
Models Achieve High Win Rates" (arXiv 2410.07137), where a constant answer reached an 86.5%
length-controlled win rate on AlpacaEval 2.0, 83.0 on Arena-Hard-Auto and 9.55 on MT-Bench.

A judge that prefers an answer unrelated to the question to a real one is not measuring the models:
when the null model's raw, or either length-controlled, win rate against the baseline is above
``threshold`` percent (default 10), the judge setup is marked unreliable, beside the flip-rate
rule of ``eval.judge.reliability``.

Their strongest null answers are prompt injections written against each benchmark's judge template;
gpt4llm does not ship those (it has no copy of their exact text to check against, and a probe
written for AlpacaEval's template says little about Vicuna's reviewer). The default answer is a
plain constant non-answer, polite and confident and saying nothing, so a judge swayed by tone over
content shows it; ``--null-answer`` takes any other text.

``eval judge --null-model`` adds the contender (id ``null-model``): its reviews are journaled like
any other and carry ``meta.null_model`` and ``meta.null_answer``, from which ``eval leaderboard``
recognises it and knows its answer's length and markdown without an answer file.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

NULL_ID = "null-model"
DEFAULT_ANSWER = ("Thank you for your question. I have considered it carefully, and I am confident that this "
                  "answer addresses it fully and accurately.")
THRESHOLD = 10.0  # percent: a null model above it marks the judge setup unreliable
RATES = (("win_rate", "win rate"), ("length_controlled_winrate", "length-controlled win rate (AlpacaEval)"),
         ("lc_shared_slope_winrate", "length-controlled win rate (shared slope)"))


def answers(question_ids: Iterable[Any], text: str) -> dict[Any, dict]:
    """The null model's answer to each question, in eval judge's answer layout."""
    return {qid: {"answer_id": "null-" + hashlib.sha256(f"{qid}\0{text}".encode()).hexdigest()[:16],
                  "model_id": NULL_ID, "question_id": qid, "text": text, "turns": [text]} for qid in question_ids}


def meta(text: str) -> dict:
    """What a null-model review carries so that the leaderboard recognises it."""
    return {"null_model": True, "null_answer": text}


def verdict(rates: dict[str, dict], threshold: float = THRESHOLD) -> dict:
    """{"unreliable", "reasons", "notes", "threshold", "null_models": rates} from each null model's
    rates ({name: {column: percent or None}}): unreliable when any rate is above ``threshold``."""
    reasons, notes = [], []
    for name, r in rates.items():
        above = [f"{label} {r[k]:.1f}%" for k, label in RATES if r.get(k) is not None and r[k] > threshold]
        if above:
            reasons.append(f"the null model {name} (the same answer to every question) gets {', '.join(above)} "
                           f"> {threshold:g}%")
        elif all(r.get(k) is None for k, _ in RATES):
            notes.append(f"the null model {name} has no win rate against the baseline: the exploit test says nothing")
    return {"unreliable": bool(reasons), "reasons": reasons, "notes": notes, "threshold": threshold,
            "null_models": rates}


def judge_rate(summary: dict) -> float | None:
    """The null model's win rate in an ``eval judge`` summary: (wins + ties / 2) / scored, percent."""
    n = summary.get("wins", 0) + summary.get("ties", 0) + summary.get("losses", 0)
    return round(100 * (summary["wins"] + summary["ties"] / 2) / n, 4) if n else None


def mark_judge(summaries: dict[str, dict], threshold: float = THRESHOLD) -> dict | None:
    """In an ``eval judge`` run with the null model: its win rate, and every model's reliability
    marked when it is above ``threshold`` (one judge setup judged them all). None without it."""
    if NULL_ID not in summaries:
        return None
    out = verdict({NULL_ID: {"win_rate": judge_rate(summaries[NULL_ID])}}, threshold)
    if out["unreliable"]:
        for s in summaries.values():
            rel = s.setdefault("reliability", {"unreliable": False, "reasons": []})
            rel["unreliable"] = True
            rel["reasons"] = [*rel.get("reasons", []), *out["reasons"]]
    return out


def names(sources: list, requested: str | None, baseline: str) -> set[str]:
    """The null models of a leaderboard: those its gpt4llm reviews mark (``meta.null_model``) and
    ``--null-model NAME``, which must be a model of the files and not the baseline."""
    from gpt4llm.errors import UserError

    found = {m for s in sources for m in s.null_models}
    if requested:
        known = {m for s in sources for j in s.judgments for m in (j.model, j.other)}
        if requested not in known:
            shown = ", ".join(sorted(known)[:12]) + (" ..." if len(known) > 12 else "")
            raise UserError(f"--null-model {requested}: no judgment involves this model (the files name {shown})")
        found.add(requested)
    if baseline in found:
        raise UserError(f"--null-model {baseline} is the baseline: the null model must be judged against a real model")
    return found
