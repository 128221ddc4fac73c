"""``gpt4llm eval leaderboard``: one table for many models from pairwise judgments: AlpacaEval's
columns (raw and length-controlled win rates against a baseline), Bradley-Terry scores with
bootstrap intervals, a CSV, a JSON and a chart. The statistics are in ``eval.winrates``.

Inputs, told apart by their fields (one format per file):

- AlpacaEval annotations: ``instruction, output_1, generator_1, output_2, generator_2,
  preference`` (``generator_1`` is the baseline; a preference near 2 prefers ``output_2``);
- gpt4llm reviews (``eval judge``): FastChat reviews with ``meta.model_id``, ``meta.reference_id``
  and ``meta.order``; each question's preference is the mean over the orders that have a verdict
  (win 2, tie 1.5, loss 1 from the two scores);
- FastChat reviews (the 2023 Vicuna evaluation): ``question_id, answer1_id, answer2_id, score``;
  they name answers, not models: the models come from ``--answers`` (else from a file name
  ``review_<model1>_<model2>.jsonl``);
- FastChat ``llm_judge`` pairwise judgments: ``question_id, model_1, model_2, g1_winner,
  g2_winner`` (both orders; each turn its own comparison).

Review files hold no texts, so the length columns need the answer files (``--answers``, FastChat's
answer or model_answer format); without them those columns are empty and the row says why.
"""

from __future__ import annotations

import csv
import io as _io
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.eval import winrates
from gpt4llm.settings import Opt, Settings

COLUMNS = ["model", "baseline", "win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
           "n_missing", "n_invalid", "discrete_win_rate", "avg_length", "length_controlled_winrate", "lc_standard_error",
           "bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95", "note"]


class LeaderboardSettings(Settings):
    """gpt4llm eval leaderboard: raw and length-controlled win rates, Bradley-Terry with CIs, from judgments."""

    reviews: Annotated[list[str], Opt("-r", pipeline=True)]
    """Judgments (repeat): AlpacaEval annotations, gpt4llm or FastChat reviews, FastChat pairwise judgments."""
    output_dir: Annotated[Path, Opt("-o", pipeline=True)]
    """Where leaderboard.json, leaderboard.csv and the chart go."""
    answers: Annotated[list[str] | None, Opt("-a", pipeline=True)] = None
    """Answer files (FastChat formats) for the models of review files: their lengths (and FastChat reviews' model names)."""
    baseline: str | None = None
    """The model every row is compared with (needed when the files' baselines differ)."""
    sort: Literal["lc", "raw", "bt"] = "lc"
    """Order of the rows: length-controlled win rate, raw win rate, or Bradley-Terry score."""
    bootstrap: int = Field(1000, ge=200)
    """Bootstrap resamples of the questions for the Bradley-Terry intervals."""
    seed: int = 0
    """Seed of the bootstrap."""
    length_prior: tuple[float, float] = winrates.BETA_PRIOR
    """Mean and sd of the judge's length slope (prior of the length-controlled fit)."""
    difficulty_sd: float = Field(winrates.TAU, ge=0)
    """Spread (logits) of instruction difficulty in the length-controlled fit; 0 leaves it out."""

    @field_validator("length_prior")
    @classmethod
    def _prior(cls, v):
        if not (v[1] > 0 and all(math.isfinite(x) for x in v)):
            raise ValueError("needs a mean and a positive sd, e.g. 1.55 0.36")
        return v


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

    def flipped(self) -> "Judgment":
        return Judgment(self.question, self.cluster, self.other, self.model,
                        None if self.preference is None else 3.0 - self.preference, self.other_len, self.model_len,
                        self.where)


@dataclass
class Source:
    path: str
    kind: str
    judgments: list[Judgment]
    baselines: set[str]  # the models this file can be read against
    invalid: dict[str, int] = field(default_factory=dict)  # model -> preferences outside [1, 2]


@dataclass
class Leaderboard:
    rows: list[dict]
    baseline: str
    sources: list[tuple[str, str]]
    output_dir: Path
    files: list[Path]
    beta: float | None
    notes: list[str]


# ---------------------------------------------------------------- answers


@dataclass
class Answers:
    by_id: dict[str, tuple[str, str]] = field(default_factory=dict)  # answer_id -> (model, text)
    by_model: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, question_id) -> text

    def text(self, answer_id: Any, model: str | None, question_id: Any) -> str | None:
        if answer_id is not None and str(answer_id) in self.by_id:
            return self.by_id[str(answer_id)][1]
        return self.by_model.get((model or "", str(question_id)))

    def model_of(self, answer_id: Any) -> str | None:
        hit = self.by_id.get(str(answer_id))
        return hit[0] if hit else None


def load_answers(paths: list[str]) -> Answers:
    out = Answers()
    for path in paths:
        for row in io.read_rows(path):
            d = row.data
            text = None
            if isinstance(d, dict) and isinstance(d.get("text"), str):
                text = d["text"]
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
    for row in rows:
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
                            len(d["output_2"]), len(d["output_1"]), row.where))
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
    for row in rows:
        d, meta = row.data, row.data["meta"]
        s = _scores(row)
        model, ref, qid = str(meta["model_id"]), str(meta["reference_id"]), d["question_id"]
        first = meta.get("order", "model_first") == "model_first"
        mid, rid = (d.get("answer1_id"), d.get("answer2_id")) if first else (d.get("answer2_id"), d.get("answer1_id"))
        slot = per_q.setdefault((model, ref, str(qid)), {"prefs": [], "where": row.where, "mid": mid, "rid": rid})
        if s is not None:
            slot["prefs"].append(_win(*(s if first else (s[1], s[0]))))
    out = []
    for (model, ref, qid), v in per_q.items():
        pref = sum(v["prefs"]) / len(v["prefs"]) if v["prefs"] else None
        ml, rl = answers.text(v["mid"], model, qid), answers.text(v["rid"], ref, qid)
        out.append(Judgment(qid, qid, model, ref, pref, None if ml is None else len(ml), None if rl is None else len(rl),
                            v["where"]))
    return Source(path, "gpt4llm reviews", out, {j.other for j in out} if len({j.other for j in out}) == 1 else set())


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
                            None if t2 is None else len(t2), row.where))
    return Source(path, "FastChat reviews", out, _common(out))


def _fastchat_pair(path, rows, answers) -> Source:
    out = []
    for row in rows:
        d = row.data
        m1, m2, qid = str(d["model_1"]), str(d["model_2"]), str(d["question_id"])
        prefs = []
        for g in ("g1_winner", "g2_winner"):
            w = d[g]
            if w not in ("model_1", "model_2", "tie", "error") and not str(w).startswith("tie"):
                raise UserError(f"{row.where}: '{g}' must be model_1, model_2, tie or error, got {w!r}")
            if w != "error":
                prefs.append(2.0 if w == "model_1" else 1.0 if w == "model_2" else 1.5)
        turn = d.get("turn", 1)
        t1, t2 = answers.text(None, m1, qid), answers.text(None, m2, qid)
        out.append(Judgment(f"{qid}#turn{turn}", qid, m1, m2, sum(prefs) / len(prefs) if prefs else None,
                            None if t1 is None else len(t1), None if t2 is None else len(t2), row.where))
    return Source(path, "FastChat pairwise judgments", out, _common(out))


def _common(js: list[Judgment]) -> set[str]:
    """The models that take part in every judgment of a file (its possible baselines)."""
    common = None
    for j in js:
        common = {j.model, j.other} if common is None else common & {j.model, j.other}
    return common or set()


# ---------------------------------------------------------------- the table


def choose_baseline(sources: list[Source], requested: str | None) -> str:
    if requested:
        known = sorted({m for s in sources for j in s.judgments for m in (j.model, j.other)})
        if requested not in known:
            shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
            raise UserError(f"--baseline {requested}: no judgment involves this model (the files name {shown})")
        return requested
    candidates = None
    for s in sources:
        if not s.baselines:
            raise UserError(f"{s.path}: no model takes part in every judgment, so the baseline is unclear; pass --baseline")
        candidates = set(s.baselines) if candidates is None else candidates & s.baselines
    if not candidates:
        listed = "; ".join(f"{s.path}: {', '.join(sorted(s.baselines))}" for s in sources)
        raise UserError(f"the files' baselines differ ({listed}); pass --baseline to pick one")
    if len(candidates) > 1:
        raise UserError(f"which model is the baseline? pass --baseline ({' or '.join(sorted(candidates))})")
    return next(iter(candidates))


def connected(games: list[tuple], baseline: str) -> tuple[list[tuple], list[str]]:
    """The games among the models a chain of judgments links to the baseline (the others cannot be
    placed on its scale), and the models left out."""
    links = defaultdict(set)
    for _, a, b, _ in games:
        links[a].add(b)
        links[b].add(a)
    reach, todo = {baseline}, [baseline]
    while todo:
        for n in links[todo.pop()] - reach:
            reach.add(n)
            todo.append(n)
    return [g for g in games if g[1] in reach], sorted(set(links) - reach)


def build(cfg: LeaderboardSettings) -> Leaderboard:
    answers = load_answers(cfg.answers or [])
    sources = [read_source(p, answers) for p in cfg.reviews]
    baseline = choose_baseline(sources, cfg.baseline)
    vs_base: dict[str, list[Judgment]] = defaultdict(list)
    games, seen, notes = [], {}, []
    invalid: dict[str, int] = defaultdict(int)
    for s in sources:
        for m, n in s.invalid.items():
            invalid[m] += n
        for j in s.judgments:
            if j.model == j.other:
                continue  # the baseline judged against itself: 50% by construction
            key = (frozenset((j.model, j.other)), j.question)
            if key in seen and seen[key][0] != s.path:
                raise UserError(f"{j.where}: {j.model} vs {j.other} on {j.question[:60]!r} is judged twice "
                                f"(also {seen[key][1]}); give each comparison once")
            if key in seen:  # the same instruction twice in one file: two instances, kept apart
                j.question = f"{j.question}#{j.where}"
            seen[key] = (s.path, j.where)
            if j.preference is not None:
                games.append((j.cluster, j.model, j.other, j.preference - 1.0))
            if baseline in (j.model, j.other):
                vs_base[(j if j.other == baseline else j.flipped()).model].append(
                    j if j.other == baseline else j.flipped())
    games, left_out = connected(games, baseline)
    if left_out:
        notes.append(f"left out: {', '.join(left_out)} (no chain of judgments connects them to {baseline})")
    rows = []
    for model, js in vs_base.items():
        prefs = [j.preference for j in js]
        if all(p is None for p in prefs):
            raise UserError(f"{model}: none of its {len(js)} judgments against {baseline} has a preference "
                            f"(first: {js[0].where}); judge them again or leave the model out")
        lengths = [j.model_len for j in js]
        row = {"model": model, "baseline": baseline,
               **winrates.raw_metrics(prefs, lengths if all(n is not None for n in lengths) else None)}
        row["n_missing"] = sum(p is None for p in prefs) - invalid.get(model, 0)
        row["n_invalid"] = invalid.get(model, 0)
        rows.append(row)
    # the length-controlled fit: every model whose lengths (and the baseline's) are all known
    with_lengths = {m: [(j.question, j.preference, j.model_len, j.other_len) for j in js] for m, js in vs_base.items()
                    if all(j.model_len is not None and j.other_len is not None for j in js)}
    lc = winrates.length_controlled(with_lengths, tuple(cfg.length_prior), cfg.difficulty_sd) if with_lengths else {
        "models": {}, "beta": None}
    bt = winrates.bradley_terry(games, baseline, cfg.bootstrap, cfg.seed) if games else {}
    for row in rows:
        m = row["model"]
        got = lc["models"].get(m)
        row["length_controlled_winrate"] = got["lc"] if got else None
        row["lc_standard_error"] = got["lc_se"] if got else None
        row.update({k: (bt.get(m) or {}).get(k) for k in ("bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95")})
        why = []
        if not got:
            why.append("no length-controlled rate: the lengths of some answers are unknown (review files hold answer "
                       "ids, not texts; pass the answer files with --answers)")
        if row["n_missing"]:
            why.append(f"{row['n_missing']} judgments without a preference (counted apart, not in n_total)")
        if row["n_invalid"]:
            why.append(f"{row['n_invalid']} preferences outside [1, 2] (counted apart, not in n_total)")
        row["note"] = "; ".join(why)
    others = sorted({p for g in games for p in g[1:3]} - set(vs_base) - {baseline})
    for m in others:  # compared only with other models: a Bradley-Terry score, no win rate against the baseline
        row = {c: None for c in COLUMNS} | {"model": m, "baseline": baseline,
                                            "note": f"not judged against {baseline}: Bradley-Terry score only"}
        row.update({k: bt[m][k] for k in ("bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95")})
        rows.append(row)
    base_row = {c: None for c in COLUMNS} | {"model": baseline, "baseline": baseline, "win_rate": 50.0,
                                             "discrete_win_rate": 50.0, "length_controlled_winrate": 50.0,
                                             "note": "the baseline"}
    if bt:
        base_row.update({k: bt[baseline][k] for k in ("bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95")})
    rows.append(base_row)
    rows = [{c: r.get(c) for c in COLUMNS} for r in rows]  # every row with every column, in one order
    key = {"lc": "length_controlled_winrate", "raw": "win_rate", "bt": "bt_score"}[cfg.sort]
    rows.sort(key=lambda r: (r[key] is None, -(r[key] or 0.0)))
    if lc.get("beta") is not None:
        notes.append(f"judge's length slope beta = {lc['beta']:.3f} (se {lc['beta_se']:.3f}), shared by "
                     f"{len(lc['models'])} model(s); difficulty sd {cfg.difficulty_sd}")
    return Leaderboard(rows, baseline, [(s.path, s.kind) for s in sources], Path(cfg.output_dir), [],
                       lc.get("beta"), notes)


def run(cfg: LeaderboardSettings) -> Leaderboard:
    board = build(cfg)
    out = board.output_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = board.rows
    io.write_json(out / "leaderboard.json", rows)
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v[0]};{v[1]}" if isinstance(v, list) else "" if v is None else v) for k, v in r.items()})
    io.write_text(out / "leaderboard.csv", buf.getvalue())
    from gpt4llm import plots

    board.files = [out / "leaderboard.json", out / "leaderboard.csv",
                   *plots.leaderboard_chart(board.rows, out / "leaderboard", board.baseline)]
    return board


def table_text(board: Leaderboard) -> str:
    def f(v, nd=2):
        return "" if v is None else f"{v:.{nd}f}"

    head = f"{'model':<34} {'LC win':>7} {'± se':>6} {'win':>7} {'± se':>6} {'BT':>8} {'95% CI':>17} {'n':>5} {'len':>6}"
    lines = [f"leaderboard against {board.baseline} ({', '.join(k for _, k in board.sources)})", head]
    for r in board.rows:
        ci = f"[{r['ci95'][0]:.0f}, {r['ci95'][1]:.0f}]" if r.get("ci95") else ""
        lines.append(f"{r['model'][:34]:<34} {f(r['length_controlled_winrate']):>7} {f(r['lc_standard_error']):>6} "
                     f"{f(r['win_rate']):>7} {f(r['standard_error']):>6} {f(r['bt_score'], 0):>8} {ci:>17} "
                     f"{r['n_total'] if r['n_total'] is not None else '':>5} "
                     f"{r['avg_length'] if r['avg_length'] is not None else '':>6}")
        if r.get("note") and r["model"] != board.baseline:
            lines.append(f"    {r['note']}")
    lines += [f"  {n}" for n in board.notes]
    lines.append(f"wrote {', '.join(str(p) for p in board.files)}")
    return "\n".join(lines)
