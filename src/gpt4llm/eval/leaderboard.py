"""``gpt4llm eval leaderboard``: one table for many models from pairwise judgments: AlpacaEval's
columns (raw and length-controlled win rates against a baseline), Bradley-Terry scores with
bootstrap intervals, a CSV, a JSON and a chart. The statistics are in ``eval.winrates`` and
``eval.alpaca_lc``; reading the judgments in ``eval.judgments``.

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
  g2_winner`` (both orders; each turn its own comparison), counted as FastChat's ``show_result.py``
  (``display_result_pairwise``) counts them: a judgment with an error in either order is left out (here:
  counted in ``n_missing``), one whose orders disagree (or whose first order is a tie) is a tie, and
  the lengths of a turn are that turn's answer alone.

The columns, and which estimator each is: ``win_rate`` ... ``avg_length`` are AlpacaEval's raw
columns; ``length_controlled_winrate`` and ``lc_standard_error`` AlpacaEval's own length-controlled
estimator (``eval.alpaca_lc``: per model, its GLM and fit); ``lc_shared_slope_winrate`` and
``lc_shared_slope_se`` ours, one length slope for the board (``eval.winrates``); ``bt_*`` and ``ci95``
Bradley-Terry with a question bootstrap (an unbounded end is null).

``style_bt_*`` and ``style_ci95``: Bradley-Terry with style covariates (answer length and markdown
headers, bold, list items), Chatbot Arena's style control (``eval.style``), so a judge's taste for
long, formatted answers is not counted as quality; the fitted style coefficients go to the board.

Review files hold no texts, so the length and style columns need the answer files (``--answers``,
FastChat's answer or model_answer format); without them those columns are empty and the row says why.

A null model (``eval judge --null-model``, or ``--null-model NAME``: one answer for every question)
is a row marked ``null_model``; when one of its win rates is above ``--null-model-threshold`` the
board says the judge setup is unreliable (``eval.null_model``). It is left out of the fits shared by
the board (shared-slope length control, style control) so that the probe moves no other figure.
"""

from __future__ import annotations

import csv
import io as _io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.eval import alpaca_lc, families, judge_fingerprint, winrates
from gpt4llm.eval.judgments import Judgment, Source, load_answers, read_source
from gpt4llm.eval import null_model as exploit, style
from gpt4llm.settings import Opt, Settings

COLUMNS = ["model", "baseline", "win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
           "n_missing", "n_invalid", "discrete_win_rate", "avg_length", "length_controlled_winrate", "lc_standard_error",
           "lc_shared_slope_winrate", "lc_shared_slope_se", "bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95",
           *style.COLUMNS, "null_model", "note"]
BT = ("bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95")


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
    sort: Literal["lc", "lc-shared", "raw", "bt", "style"] = "lc"
    """Order of the rows: AlpacaEval's length-controlled win rate, the shared-slope one, raw win rate, Bradley-Terry, or style-controlled Bradley-Terry."""
    bootstrap: int = Field(1000, ge=200)
    """Bootstrap resamples of the questions for the Bradley-Terry intervals."""
    seed: int = 0
    """Seed of the bootstrap."""
    null_model: str | None = None
    """The model that gives one answer to every question (eval judge --null-model marks its own reviews): a row marked as such, and the exploit test."""
    null_model_threshold: float = Field(exploit.THRESHOLD, ge=0, le=100)
    """The judge setup is unreliable when the null model's raw or length-controlled win rate is above this (percent)."""
    instruction_difficulty: Path | None = None
    """AlpacaEval's instruction_difficulty.csv (its hub dataset): with its annotation files, its own LC GLM with difficulty."""
    length_prior: tuple[float, float] = winrates.BETA_PRIOR
    """Mean and sd of the judge's length slope (prior of the shared-slope length-controlled fit)."""
    difficulty_sd: float = Field(winrates.TAU, ge=0)
    """Spread (logits) of instruction difficulty in the shared-slope fit; 0 leaves it out."""
    allow_mixed_judges: bool = False
    """Build one board from verdicts of different judges (judge, returned model id, system fingerprint, prompt or decoding differ); refused by default."""
    family: list[str] | None = None
    """PATTERN=FAMILY (repeat): a model's family for the self-preference check, before the built-in table (eval judge --family)."""

    @field_validator("length_prior")
    @classmethod
    def _prior(cls, v):
        if not (v[1] > 0 and all(math.isfinite(x) for x in v)):
            raise ValueError("needs a mean and a positive sd, e.g. 0 1.59")
        return v


@dataclass
class Leaderboard:
    rows: list[dict]
    baseline: str
    sources: list[tuple[str, str]]
    output_dir: Path
    files: list[Path]
    beta: float | None
    notes: list[str]
    judge: str | None = None
    """Who gave the verdicts (eval.judge_fingerprint.describe), when the files say."""
    style: dict | None = None
    """The style-controlled fit's coefficients and games (eval.style), None without texts."""
    reliability: dict | None = None
    """The null-model exploit test (eval.null_model.verdict), None without a null model."""


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
    nulls = exploit.names(sources, cfg.null_model, baseline)
    fps = [x for s in sources for x in s.fingerprints]
    notes = judge_fingerprint.check(fps, cfg.allow_mixed_judges)  # refuses two judges' verdicts in one board
    vs_base: dict[str, list[Judgment]] = defaultdict(list)
    games, seen = [], {}
    invalid: dict[str, int] = defaultdict(int)
    sgames: list[tuple] = []  # the games whose two texts are known (style control), the null models' apart
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
                if j.model_text is not None and j.other_text is not None and not nulls & {j.model, j.other}:
                    sgames.append((j.cluster, j.model, j.other, j.preference - 1.0, j.model_text, j.other_text))
            if baseline in (j.model, j.other):
                vs_base[(j if j.other == baseline else j.flipped()).model].append(
                    j if j.other == baseline else j.flipped())
    if not games and not vs_base:
        raise UserError(f"{sources[0].path}: every judgment compares {baseline} with itself; a leaderboard needs "
                        "judgments of at least one other model")
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
    # the length-controlled rates: every model whose lengths (and the baseline's) are all known
    known = {m: js for m, js in vs_base.items() if all(j.model_len is not None and j.other_len is not None for j in js)}
    difficulty = alpaca_lc.read_difficulty(cfg.instruction_difficulty) if cfg.instruction_difficulty else None
    ae, ae_notes = {}, {}
    for m, js in known.items():
        d = None
        if difficulty is not None:
            if len(js) == len(difficulty) and all(j.index in difficulty for j in js):
                d = [difficulty[j.index] for j in js]
            else:
                ae_notes[m] = (f"--instruction-difficulty not applied ({len(difficulty)} instructions; it applies to "
                               f"AlpacaEval annotation files in AlpacaEval's order, and these are {len(js)} judgments)")
        ae[m] = alpaca_lc.length_controlled([j.preference for j in js], [j.model_len for j in js],
                                            [j.other_len for j in js], d)
    lc_rows = {m: [(j.question, j.preference, j.model_len, j.other_len) for j in js] for m, js in known.items()}
    board_lc = {m: r for m, r in lc_rows.items() if m not in nulls}
    shared = winrates.length_controlled(board_lc, tuple(cfg.length_prior), cfg.difficulty_sd) if board_lc else {
        "models": {}, "beta": None}
    for m in nulls & lc_rows.keys():  # a null model alone: the probe must not move the board's shared slope
        shared["models"][m] = winrates.length_controlled({m: lc_rows[m]}, tuple(cfg.length_prior),
                                                         cfg.difficulty_sd)["models"].get(m)
    bt = winrates.bradley_terry(games, baseline, cfg.bootstrap, cfg.seed) if games else {}
    placed = {p for g in games for p in g[1:3]}
    sc = style.board(sgames, baseline, placed, cfg.bootstrap, cfg.seed) if sgames else None
    n_style, n_games = defaultdict(int), defaultdict(int)
    for g in sgames:
        n_style[g[1]] += 1
        n_style[g[2]] += 1
    for g in games:
        n_games[g[1]] += 1
        n_games[g[2]] += 1

    def style_cells(row: dict, m: str) -> list[str]:
        row.update({k: ((sc or {}).get("models", {}).get(m) or {}).get(k) for k in style.COLUMNS})
        row["null_model"] = True if m in nulls else None
        why = style.row_note(m, sc, n_style[m], n_games[m], m in nulls)
        return (["null model: the same answer to every question (the exploit test)"] if m in nulls else []) + (
            [why] if why else [])
    for row in rows:
        m = row["model"]
        got, sh = ae.get(m), shared["models"].get(m)
        row["length_controlled_winrate"] = got["lc"] if got else None
        row["lc_standard_error"] = got["lc_se"] if got else None
        row["lc_shared_slope_winrate"] = sh["lc"] if sh else None
        row["lc_shared_slope_se"] = sh["lc_se"] if sh else None
        row.update({k: (bt.get(m) or {}).get(k) for k in BT})
        why = [] if m not in ae_notes else [ae_notes[m]]
        if not got:
            why.append("no length-controlled rate: the lengths of some answers are unknown (review files hold answer "
                       "ids, not texts; pass the answer files with --answers, which style control needs too)")
        if row["n_missing"]:
            why.append(f"{row['n_missing']} judgments without a preference (counted apart, not in n_total)")
        if row["n_invalid"]:
            why.append(f"{row['n_invalid']} preferences outside [1, 2] (counted apart, not in n_total)")
        why += _unbounded(bt.get(m))
        why = style_cells(row, m) + why
        row["note"] = "; ".join(why)
    others = sorted({p for g in games for p in g[1:3]} - set(vs_base) - {baseline})
    for m in others:  # compared only with other models: a Bradley-Terry score, no win rate against the baseline
        row = {c: None for c in COLUMNS} | {"model": m, "baseline": baseline}
        row.update({k: bt[m][k] for k in BT})
        row["note"] = "; ".join([*style_cells(row, m), f"not judged against {baseline}: Bradley-Terry score only",
                                 *_unbounded(bt[m])])
        rows.append(row)
    base_row = {c: None for c in COLUMNS} | {"model": baseline, "baseline": baseline, "win_rate": 50.0,
                                             "discrete_win_rate": 50.0, "length_controlled_winrate": 50.0,
                                             "lc_shared_slope_winrate": 50.0, "note": "the baseline"}
    if bt:
        base_row.update({k: bt[baseline][k] for k in BT})
    if sc is not None:
        base_row.update({k: sc["models"][baseline][k] for k in style.COLUMNS})
    rows.append(base_row)
    rows = [{c: r.get(c) for c in COLUMNS} for r in rows]  # every row with every column, in one order
    # bt sorts by bt_win_rate: the same order as bt_score, with a score unbounded above (win rate 100) first
    key = {"lc": "length_controlled_winrate", "lc-shared": "lc_shared_slope_winrate", "raw": "win_rate",
           "bt": "bt_win_rate", "style": "style_bt_win_rate"}[cfg.sort]
    rows.sort(key=lambda r: (r[key] is None, -(r[key] or 0.0)))
    if ae:
        glms = sorted({v["glm"] for v in ae.values()})
        notes.append(f"length_controlled_winrate: AlpacaEval's own estimator, one model at a time ({', '.join(glms)} "
                     "GLM" + ("" if difficulty else "; without AlpacaEval's instruction difficulty, so "
                              "lc_standard_error, the spread of its per-instruction predictions, is empty") + ")")
    if shared.get("beta") is not None:
        notes.append(f"lc_shared_slope_winrate: judge's length slope beta = {shared['beta']:.3f} (se "
                     f"{shared['beta_se']:.3f}), shared by {len(set(shared['models']) - nulls)} model(s); "
                     f"difficulty sd {cfg.difficulty_sd}")
    if any(r["model"] in bt and bt[r["model"]]["bt_unbounded"] for r in rows):
        notes.append("Bradley-Terry: an empty score or interval end is unbounded (no finite maximum-likelihood "
                     "estimate: a model that wins, or loses, every game); the finite end is the likelihood-ratio bound")
    judges = sorted({j for fp, _ in fps if fp and fp.get("judge") for j in fp["judge"].split(" + ")})  # a panel's too
    for f in families.flags(judges, [r["model"] for r in rows if r["model"] != baseline], baseline,
                            families.parse_overrides(cfg.family)):
        notes.append(f"self-preference risk: judge {f['judge']} and {f['role']} {f['model']} ({f['reason']}); "
                     "compare with another judge's board (eval judge with several --judge)")
    notes += style.board_notes(sc)
    verdict = exploit.verdict({r["model"]: {k: r[k] for k, _ in exploit.RATES} for r in rows if r["null_model"]},
                                 cfg.null_model_threshold) if nulls else None
    notes += verdict["notes"] if verdict else []
    return Leaderboard(rows, baseline, [(s.path, s.kind) for s in sources], Path(cfg.output_dir), [],
                       shared.get("beta"), notes, judge_fingerprint.describe(fps) if any(fp for fp, _ in fps) else None,
                       style=None if sc is None else {k: sc[k] for k in ("coefficients", "games", "separated")},
                       reliability=verdict)


def _unbounded(b: dict | None) -> list[str]:
    way = (b or {}).get("bt_unbounded")
    if not way:
        return []
    return [{"above": "wins every game it played: Bradley-Terry score unbounded above (ci95 upper end null = +inf)",
             "below": "loses every game it played: Bradley-Terry score unbounded below (ci95 lower end null = -inf)",
             "undetermined": "its games do not place it: Bradley-Terry score undetermined"}[way]]


def _cell(v) -> str:
    """A CSV cell: an interval as lo;hi with an unbounded end as -inf / inf, None as empty."""
    if isinstance(v, list):
        return f"{'-inf' if v[0] is None else v[0]};{'inf' if v[1] is None else v[1]}"
    return "" if v is None else str(v)


def run(cfg: LeaderboardSettings) -> Leaderboard:
    board = build(cfg)
    out = board.output_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = board.rows
    # the rows, and what belongs to the board: the style coefficients, the exploit test, the notes
    io.write_json(out / "leaderboard.json", {"baseline": board.baseline, "judge": board.judge, "rows": rows,
                                             "style": board.style, "reliability": board.reliability,
                                             "notes": board.notes})
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    io.write_text(out / "leaderboard.csv", buf.getvalue())
    from gpt4llm import plots

    board.files = [out / "leaderboard.json", out / "leaderboard.csv",
                   *plots.leaderboard_chart(board.rows, out / "leaderboard", board.baseline)]
    return board


def table_text(board: Leaderboard) -> str:
    def f(v, nd=2):
        return "" if v is None else f"{v:.{nd}f}"

    def end(v, inf):
        return inf if v is None else f"{v:.0f}"

    head = (f"{'model':<30} {'LC(AE)':>7} {'± se':>5} {'LC(sh)':>7} {'± se':>5} {'win':>7} {'± se':>5} {'BT':>6} "
            f"{'95% CI':>14} {'BT(sc)':>6} {'95% CI':>14} {'n':>4} {'len':>5}")
    lines = [f"leaderboard against {board.baseline} ({', '.join(k for _, k in board.sources)})"
             + (f"; judge: {board.judge}" if board.judge else ""), head]
    for r in board.rows:
        ci = f"[{end(r['ci95'][0], '-inf')}, {end(r['ci95'][1], 'inf')}]" if r.get("ci95") else ""
        bt = f(r["bt_score"], 0) or ("inf" if r.get("ci95") and r["ci95"][1] is None else
                                     "-inf" if r.get("ci95") and r["ci95"][0] is None else "")
        sci = f"[{end(r['style_ci95'][0], '-inf')}, {end(r['style_ci95'][1], 'inf')}]" if r.get("style_ci95") else ""
        sbt = f(r["style_bt_score"], 0) or {"above": "inf", "below": "-inf"}.get(
            (r.get("style_bt_win_rate") == 100.0 and "above") or (r.get("style_bt_win_rate") == 0.0 and "below"), "")
        lines.append(f"{r['model'][:30]:<30} {f(r['length_controlled_winrate']):>7} {f(r['lc_standard_error']):>5} "
                     f"{f(r['lc_shared_slope_winrate']):>7} {f(r['lc_shared_slope_se']):>5} "
                     f"{f(r['win_rate']):>7} {f(r['standard_error']):>5} {bt:>6} {ci:>14} {sbt:>6} {sci:>14} "
                     f"{r['n_total'] if r['n_total'] is not None else '':>4} "
                     f"{r['avg_length'] if r['avg_length'] is not None else '':>5}")
        if r.get("note") and r["model"] != board.baseline:
            lines.append(f"    {r['note']}")
    lines.append("  LC(AE): AlpacaEval's length-controlled win rate (its estimator); LC(sh): one length slope for the "
                 "board (ours); win: raw; BT: Bradley-Terry, Elo scale; BT(sc): Bradley-Terry with style control")
    lines += [f"  {n}" for n in board.notes]
    if style.style_text(board.style):
        lines.append(f"  {style.style_text(board.style)}")
    if board.reliability and board.reliability["unreliable"]:
        lines.append(f"  UNRELIABLE JUDGE SETUP: {'; '.join(board.reliability['reasons'])}")
    elif board.reliability:
        lines.append(f"  null-model exploit test passed: every null model at or below "
                     f"{board.reliability['threshold']:g}%")
    lines.append(f"wrote {', '.join(str(p) for p in board.files)}")
    return "\n".join(lines)
