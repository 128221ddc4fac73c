"""Reading pairwise judgments for ``eval leaderboard``: every input format it takes, each turned
into ``Judgment`` records (one comparison of a model with another on one question, as an
AlpacaEval preference in [1, 2]), and the answer files that give their lengths.

FastChat ``llm_judge`` pairwise judgments are counted as FastChat's ``show_result.py``
(``display_result_pairwise``, lm-sys/FastChat @ 02d4581) counts them: a judgment with an error in
either order is left out (here: no preference, counted in ``n_missing``), one whose first order is a
tie or whose two orders disagree is a tie, else the first order's winner wins; the lengths are those
of the judged turn's answer alone.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.eval import winrates


@dataclass
class Judgment:
    """One comparison of ``model`` with ``other`` on one question: preference in [1, 2] (2 = model
    preferred) or None, the outputs' lengths when known."""

    question: str  # the instruction (or question id, and turn) this judgment is about
    cluster: str  # the bootstrap unit (the question)
    model: str
    other: str
    preference: float | None
    model_len: int | None
    other_len: int | None
    where: str
    index: int | None = None  # position in an AlpacaEval annotation file (its instruction index there)
    model_text: str | None = None  # the judged outputs, when known (style control counts their markdown)
    other_text: str | None = None

    def flipped(self) -> "Judgment":
        return Judgment(self.question, self.cluster, self.other, self.model,
                        None if self.preference is None else 3.0 - self.preference, self.other_len, self.model_len,
                        self.where, self.index, self.other_text, self.model_text)


@dataclass
class Source:
    path: str
    kind: str
    judgments: list[Judgment]
    baselines: set[str]  # the models this file can be read against
    invalid: dict[str, int] = field(default_factory=dict)  # model -> preferences outside [1, 2]
    null_models: dict[str, str] = field(default_factory=dict)  # eval judge --null-model contenders: id -> its answer
    fingerprints: list[tuple[dict | None, str]] = field(default_factory=list)
    """(meta.judge_fingerprint or None, file:line) of each verdict: which judge gave it (eval.judge_fingerprint)."""


# ---------------------------------------------------------------- answers


@dataclass
class Answers:
    by_id: dict[str, tuple[str, str]] = field(default_factory=dict)  # answer_id -> (model, text)
    by_model: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, question_id) -> text
    turns: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (model, question_id) -> each turn's text

    def text(self, answer_id: Any, model: str | None, question_id: Any) -> str | None:
        if answer_id is not None and str(answer_id) in self.by_id:
            return self.by_id[str(answer_id)][1]
        return self.by_model.get((model or "", str(question_id)))

    def turn(self, model: str, question_id: Any, turn: int) -> str | None:
        """The answer to one turn alone (a one-turn answer is its turn 1)."""
        t = self.turns.get((model, str(question_id)))
        return t[turn - 1] if t is not None and 1 <= turn <= len(t) else None

    def model_of(self, answer_id: Any) -> str | None:
        hit = self.by_id.get(str(answer_id))
        return hit[0] if hit else None


def load_answers(paths: list[str]) -> Answers:
    out = Answers()
    for path in paths:
        for row in io.read_rows(path):
            d = row.data
            text, turns = None, None
            if isinstance(d, dict) and isinstance(d.get("text"), str):
                text, turns = d["text"], [d["text"]]
            elif isinstance(d, dict) and isinstance(d.get("choices"), list) and d["choices"]:
                turns = d["choices"][0].get("turns") if isinstance(d["choices"][0], dict) else None
                if isinstance(turns, list) and all(isinstance(t, str) for t in turns):
                    text = "\n".join(turns)
            if text is None or not isinstance(d, dict) or "question_id" not in d:
                raise UserError(f"{row.where}: not a FastChat answer (question_id with text, or choices[0].turns)")
            if (d.get("meta") or {}).get("sample", 0) != 0:
                continue
            model = str(d.get("model_id") or Path(path).stem.removeprefix("answer_"))
            if d.get("answer_id") is not None:
                out.by_id[str(d["answer_id"])] = (model, text)
            out.by_model.setdefault((model, str(d["question_id"])), text)
            out.turns.setdefault((model, str(d["question_id"])), list(turns))
    return out


# ---------------------------------------------------------------- reading judgments

KINDS = ("AlpacaEval annotations (instruction, output_1, generator_1, output_2, generator_2, preference), gpt4llm or "
         "FastChat reviews (question_id, answer1_id, answer2_id, score), FastChat pairwise judgments (question_id, "
         "model_1, model_2, g1_winner, g2_winner)")


def kind_of(d: Any) -> str | None:
    if not isinstance(d, dict):
        return None
    if {"output_1", "output_2", "generator_1", "generator_2"} <= d.keys():
        return "alpaca_eval"
    if {"model_1", "model_2", "g1_winner", "g2_winner"} <= d.keys():
        return "fastchat_pair"
    if {"question_id", "score"} <= d.keys() and "answer1_id" in d:
        meta = d.get("meta")
        return "gpt4llm" if isinstance(meta, dict) and "model_id" in meta and "reference_id" in meta else "fastchat_review"
    if {"question_id", "model", "score"} <= d.keys():
        return "fastchat_single"
    return None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_source(path: str, answers: Answers) -> Source:
    rows = io.read_rows(path)
    if not rows:
        raise UserError(f"{path}: no judgments in the file")
    kind = kind_of(rows[0].data)
    if kind is None:
        raise UserError(f"{rows[0].where}: not a judgment file gpt4llm reads; expected {KINDS}")
    if kind == "fastchat_single":
        raise UserError(f"{rows[0].where}: single-answer grades (model, score), not pairwise judgments; "
                        "their summary is eval judge --mode single's")
    for row in rows:
        if kind_of(row.data) != kind:
            raise UserError(f"{row.where}: not like the file's first record ({kind.replace('_', ' ')}); one format per file")
    return {"alpaca_eval": _alpaca_eval, "gpt4llm": _gpt4llm, "fastchat_review": _fastchat_review,
            "fastchat_pair": _fastchat_pair}[kind](path, rows, answers)


def _alpaca_eval(path, rows, answers) -> Source:
    out, invalid = [], defaultdict(int)
    for n, row in enumerate(rows):
        d = row.data
        for k in ("instruction", "output_1", "output_2", "generator_1", "generator_2"):
            if not isinstance(d.get(k), str):
                raise UserError(f"{row.where}: '{k}' must be a string in an AlpacaEval annotation")
        p = d.get("preference")
        if p is not None and not _number(p):
            raise UserError(f"{row.where}: 'preference' must be a number in [1, 2] or null, got {p!r}")
        pref = winrates.as_preference(p)
        if p is not None and pref is None and not (isinstance(p, float) and math.isnan(p)):
            invalid[d["generator_2"]] += 1
        out.append(Judgment(d["instruction"], d["instruction"], d["generator_2"], d["generator_1"], pref,
                            len(d["output_2"]), len(d["output_1"]), row.where, n, d["output_2"], d["output_1"]))
    return Source(path, "AlpacaEval annotations", out, {j.other for j in out} if len({j.other for j in out}) == 1
                  else set(), dict(invalid))


def _scores(row) -> tuple[float, float] | None:
    s = row.data.get("score")
    if not (isinstance(s, list) and len(s) == 2 and all(_number(x) for x in s)):
        raise UserError(f"{row.where}: 'score' must be a list of two numbers, got {s!r}")
    return None if min(s) < 0 else (float(s[0]), float(s[1]))


def _win(a: float, b: float) -> float:
    return 2.0 if a > b else 1.0 if a < b else 1.5


def _gpt4llm(path, rows, answers) -> Source:
    per_q: dict[tuple, dict] = {}
    null: dict[str, str] = {}
    fps: list[tuple[dict | None, str]] = []
    for row in rows:
        d, meta = row.data, row.data["meta"]
        s = _scores(row)
        model, ref, qid = str(meta["model_id"]), str(meta["reference_id"]), d["question_id"]
        first = meta.get("order", "model_first") == "model_first"
        mid, rid = (d.get("answer1_id"), d.get("answer2_id")) if first else (d.get("answer2_id"), d.get("answer1_id"))
        slot = per_q.setdefault((model, ref, str(qid)), {"prefs": [], "where": row.where, "mid": mid, "rid": rid})
        if meta.get("null_model") and isinstance(meta.get("null_answer"), str):
            null[model] = meta["null_answer"]  # the same text for every question, kept in the review itself
        if s is not None:
            slot["prefs"].append(_win(*(s if first else (s[1], s[0]))))
            fps.append((meta.get("judge_fingerprint"), row.where))
    out = []
    for (model, ref, qid), v in per_q.items():
        pref = sum(v["prefs"]) / len(v["prefs"]) if v["prefs"] else None
        ml, rl = answers.text(v["mid"], model, qid), answers.text(v["rid"], ref, qid)
        ml = null.get(model) if ml is None else ml
        out.append(Judgment(qid, qid, model, ref, pref, None if ml is None else len(ml), None if rl is None else len(rl),
                            v["where"], model_text=ml, other_text=rl))
    return Source(path, "gpt4llm reviews", out, {j.other for j in out} if len({j.other for j in out}) == 1 else set(),
                  fingerprints=fps, null_models=null)


def _fastchat_review(path, rows, answers) -> Source:
    names = re.fullmatch(r"review_([^_]+)_([^_]+)", Path(path).stem)
    out = []
    for row in rows:
        d = row.data
        s = _scores(row)
        m1, m2 = answers.model_of(d.get("answer1_id")), answers.model_of(d.get("answer2_id"))
        if (m1 is None or m2 is None) and names:
            m1, m2 = m1 or names.group(1), m2 or names.group(2)
        if m1 is None or m2 is None:
            raise UserError(f"{row.where}: FastChat reviews name answers, not models; pass the answer files with "
                            "--answers (answer ids " f"{d.get('answer1_id')}, {d.get('answer2_id')})")
        qid = str(d["question_id"])
        t1, t2 = answers.text(d.get("answer1_id"), m1, qid), answers.text(d.get("answer2_id"), m2, qid)
        out.append(Judgment(qid, qid, m1, m2, None if s is None else _win(*s), None if t1 is None else len(t1),
                            None if t2 is None else len(t2), row.where, model_text=t1, other_text=t2))
    return Source(path, "FastChat reviews", out, _common(out))


def _fastchat_pair(path, rows, answers) -> Source:
    """FastChat's show_result.py (display_result_pairwise) rules: an error in either order drops the
    judgment; g1 a tie, or g1 != g2, is a tie; else g1's winner wins. Lengths: the judged turn's answer."""
    out = []
    for row in rows:
        d = row.data
        m1, m2, qid = str(d["model_1"]), str(d["model_2"]), str(d["question_id"])
        w1, w2 = d["g1_winner"], d["g2_winner"]
        for g, w in (("g1_winner", w1), ("g2_winner", w2)):
            if w not in ("model_1", "model_2", "error") and not str(w).startswith("tie"):
                raise UserError(f"{row.where}: '{g}' must be model_1, model_2, tie or error, got {w!r}")
        if "error" in (w1, w2):
            pref = None
        elif str(w1).startswith("tie") or w1 != w2:
            pref = 1.5
        else:
            pref = 2.0 if w1 == "model_1" else 1.0
        turn = d.get("turn", 1)
        if not (isinstance(turn, int) and turn >= 1):
            raise UserError(f"{row.where}: 'turn' must be 1, 2, ..., got {turn!r}")
        t1, t2 = answers.turn(m1, qid, turn), answers.turn(m2, qid, turn)
        out.append(Judgment(f"{qid}#turn{turn}", qid, m1, m2, pref,
                            None if t1 is None else len(t1), None if t2 is None else len(t2), row.where,
                            model_text=t1, other_text=t2))
    return Source(path, "FastChat pairwise judgments", out, _common(out))


def _common(js: list[Judgment]) -> set[str]:
    """The models that take part in every judgment of a file (its possible baselines)."""
    common = None
    for j in js:
        common = {j.model, j.other} if common is None else common & {j.model, j.other}
    return common or set()
