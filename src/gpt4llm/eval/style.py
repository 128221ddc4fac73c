"""Style control for ``eval leaderboard`` (issue 21): Bradley-Terry with style covariates, Chatbot
Arena's method as FastChat computes it (lm-sys/FastChat ``fastchat/serve/monitor/rating_systems.py``:
``preprocess_for_style``, ``fit_contextual_bt``; arena-hard-auto v0.1's ``construct_style_matrices``
builds the same matrix), so a judge's taste for long, bold, listed answers is not counted as quality.

**What is counted in an answer** (FastChat's ``count_markdown_elements`` after its ``remove_pattern``,
which deletes the inside of every ```...``` code block first): ``headers``, lines that start with
one to six ``#`` and a space; ``bold``, ``**...**`` and ``__...__`` on one line; ``lists``, ordered
(``1. ``) and unordered (``- ``, ``* ``, ``+ ``) items; ``length``, the whole answer in characters.
FastChat counts tokens with tiktoken, which needs a download gpt4llm does not make; characters are
AlpacaEval's length and our ``avg_length``, and the covariate below is a ratio, so the unit cancels
but for the ``+ 1``.

**The covariates of a game** of answer a against answer b: for each feature, FastChat's
``(a - b) / (a + b + 1)`` (``add_one=True``, the ratio applied to all four), then standardised.
FastChat divides by the standard deviation over the battles after subtracting their mean; in the
arena the two sides come in random order, so that mean is about 0. Here each game enters in both
orientations (the likelihood does not change with the orientation, and arena-hard v0.1 plays every
pair twice), so the mean is exactly 0 and the standardisation is a division by the root mean
square. Subtracting the mean of one-sided games (every game "model minus baseline", as
arena-hard-auto v2 builds them) would put the controlled score at the board's *average* style gap
instead of at equal style: on a board of one model that always writes more, no control at all.
A feature that never differs between the two answers (no headers anywhere) is left out.

**The fit.** P(a beats b) = sigmoid(s_a - s_b + sum_k beta_k z_k), the outcome a soft label
(preference - 1: a tie is 0.5, as FastChat's outcomes; AlpacaEval's fractional preferences as they
are; each judgment once: ours carry no "strong" verdicts to weight three times as arena-hard-auto
v2 does), the baseline's s = 0, maximum likelihood by Newton. FastChat adds an L2 penalty (0.5 on
every parameter, for parity with scikit-learn's default C = 1 on its old duplicated battles); the
maximum likelihood is what our raw Bradley-Terry column fits, so the two columns differ by the
covariates alone. Scores on the Elo scale as FastChat's (alpha = ln 10, scale 400): 1000 + 400 /
ln 10 * s; ``style_bt_win_rate`` = 100 * sigmoid(s), the predicted win rate against the baseline
when the two answers have the same style. A coefficient beta_k is in logits per standard unit of its
covariate; positive: the judge prefers the answer with more of it.

**Intervals**: percentiles of fits on question-level bootstrap resamples (every comparison of a
drawn question comes along), as our raw Bradley-Terry (FastChat resamples battles); the covariates
standardised once on the full set, as FastChat does.

**When there is no estimate.** A model that wins (loses) every game is unbounded as in the raw
column (``eval.winrates._sides``): its score is null. When the covariates themselves predict every
verdict (a judge that always prefers the longer answer: its verdict is a step in the length
covariate) the maximum-likelihood estimate does not exist either; that is checked exactly, by a
linear program for a direction no verdict contradicts (Albert and Anderson 1984), and the
style-controlled scores are then left empty with the reason.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from scipy.special import expit, log_expit

from gpt4llm.eval.winrates import ELO_BASE, ELO_SCALE, _sides

FEATURES = ("length", "headers", "bold", "lists")
_CODE = re.compile("```([^`]*)```")
_HEADERS = [re.compile(rf"^#{{{k}}}\s", re.MULTILINE) for k in range(1, 7)]
_LISTS = (re.compile(r"^\s*\d+\.\s", re.MULTILINE), re.compile(r"^\s*[-*+]\s", re.MULTILINE))
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))
RIDGE = 1e-8  # numerical only: 1e-8 logits^-2 moves a score by < 1e-6 Elo on 80 games


def elements(text: str) -> tuple[int, int, int, int]:
    """(length in characters, headers, bold, list items) of one answer, counted as FastChat counts."""
    length = len(text)
    for block in _CODE.findall(text):  # FastChat's remove_pattern: the inside of each code block, wherever it occurs
        text = text.replace(block, "")
    return (length, sum(len(p.findall(text)) for p in _HEADERS), sum(len(p.findall(text)) for p in _BOLD),
            sum(len(p.findall(text)) for p in _LISTS))


def covariates(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FastChat's per-feature (a - b) / (a + b + 1), rows = games."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a - b) / (a + b + 1.0)


def _loglik(X, y, w, t, ridge):
    e = X @ t
    return float((w * (y * log_expit(e) + (1 - y) * log_expit(-e))).sum()) - 0.5 * ridge * float(t @ t)


def _newton(X, y, w, ridge=RIDGE) -> np.ndarray:
    t = np.zeros(X.shape[1])
    for _ in range(200):
        p = expit(X @ t)
        g = X.T @ (w * (y - p)) - ridge * t
        H = (X * (w * p * (1 - p))[:, None]).T @ X + ridge * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        f0, s = _loglik(X, y, w, t, ridge), 1.0
        while s > 1e-10 and _loglik(X, y, w, t + s * step, ridge) < f0 - 1e-12:
            s *= 0.5
        t = t + s * step
        if np.max(np.abs(s * step)) < 1e-10:
            break
    return t


def _design(ia, ib, Z, rows, free):
    col = {p: k for k, p in enumerate(free)}
    X = np.zeros((int(rows.sum()), len(free) + Z.shape[1]))
    for r, (a, b) in enumerate(zip(ia[rows], ib[rows])):
        if a in col:
            X[r, col[a]] += 1.0
        if b in col:
            X[r, col[b]] -= 1.0
    X[:, len(free):] = Z[rows]
    return X


def _fit(ia, ib, y, w, Z, n, anchor, ridge=RIDGE):
    """Scores (anchor 0; +-inf beyond the anchor's component, nan undetermined), the coefficients,
    and the design of the finite part."""
    side = _sides(ia, ib, y, w, n, anchor)
    finite = side == 0
    rows = finite[ia] & finite[ib] & (w > 0)
    free = [k for k in range(n) if finite[k] and k != anchor]
    X = _design(ia, ib, Z, rows, free)
    t = _newton(X, y[rows], w[rows], ridge)
    s = np.where(finite, 0.0, np.where(side > 0, np.inf, np.where(side < 0, -np.inf, np.nan)))
    s[free] = t[: len(free)]
    return s, t[len(free):], X, rows


def separating_direction(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """A direction v along which the likelihood keeps rising (no verdict contradicts it), or None when
    the maximum-likelihood estimate exists: v with sign(y - 1/2) X v >= 0 for the hard verdicts (y 0 or
    1), X v = 0 for the soft ones, not all zero (Albert and Anderson 1984), by a linear program."""
    from scipy.optimize import linprog

    hard = (y == 0) | (y == 1)
    if not hard.any() or X.shape[1] == 0:
        return None
    S = (2 * y[hard] - 1)[:, None] * X[hard]
    soft = X[~hard]
    res = linprog(-S.sum(0), A_ub=-S, b_ub=np.zeros(len(S)), A_eq=soft if len(soft) else None,
                  b_eq=np.zeros(len(soft)) if len(soft) else None, bounds=(-1, 1), method="highs")
    return res.x if res.status == 0 and -res.fun > 1e-7 else None


def style_control(games: Sequence[tuple], baseline: str, rounds: int = 1000, seed: int = 0) -> dict:
    """Style-controlled Bradley-Terry from ``games`` = [(cluster, a, b, y, text_a, text_b)], y =
    P(a beats b) in [0, 1]. Returns {"models": {model: {"style_bt_score", "style_ci95",
    "style_bt_win_rate", "style_bt_win_rate_ci95", "style_unbounded"}}, "coefficients": {feature:
    {"coef", "ci95", "rms"} or None when left out}, "games", "separated" (None, or which covariates
    predict every verdict)}; scores on the Elo scale, None where unbounded or not identified."""
    players = sorted({g[1] for g in games} | {g[2] for g in games} | {baseline})
    pid = {p: k for k, p in enumerate(players)}
    clusters = sorted({g[0] for g in games}, key=str)
    cid = {c: k for k, c in enumerate(clusters)}
    ia = np.array([pid[g[1]] for g in games], dtype=int)
    ib = np.array([pid[g[2]] for g in games], dtype=int)
    y = np.array([g[3] for g in games], dtype=float)
    ci = np.array([cid[g[0]] for g in games], dtype=int)
    seen: dict[str, tuple] = {}

    def count(text):
        if text not in seen:
            seen[text] = elements(text)
        return seen[text]

    ea = np.array([count(g[4]) for g in games], dtype=float).reshape(-1, 4)
    eb = np.array([count(g[5]) for g in games], dtype=float).reshape(-1, 4)
    D = covariates(ea, eb)
    rms = np.sqrt((D ** 2).mean(0)) if len(D) else np.zeros(4)
    used = [k for k in range(4) if rms[k] > 0]
    Z = D[:, used] / rms[used]
    n, anchor = len(players), pid[baseline]
    s, beta, X, rows = _fit(ia, ib, y, np.ones_like(y), Z, n, anchor)
    direction = separating_direction(X, y[rows])
    out = {"games": len(games), "separated": None,
           "coefficients": {f: None for f in FEATURES}, "models": {}}
    if direction is not None:
        k = X.shape[1] - len(used)  # name the covariates that separate alone (with the scores), else all of them
        alone = [FEATURES[used[j]] for j in range(len(used))
                 if separating_direction(X[:, list(range(k)) + [k + j]], y[rows]) is not None]
        out["separated"] = alone or [FEATURES[used[j]] for j in range(len(used)) if abs(direction[k + j]) > 1e-9]
        out["models"] = {p: {"style_bt_score": None, "style_ci95": None, "style_bt_win_rate": None,
                             "style_bt_win_rate_ci95": None, "style_unbounded": "not identified"} for p in players}
        return out
    rng = np.random.default_rng(seed)
    boots, bbeta = np.empty((rounds, n)), np.full((rounds, len(used)), np.nan)
    for r in range(rounds):
        counts = np.bincount(rng.integers(0, len(clusters), len(clusters)), minlength=len(clusters)).astype(float)
        boots[r], bbeta[r] = _fit(ia, ib, y, counts[ci], Z, n, anchor, ridge=1e-6)[:2]
    lo = np.percentile(np.where(np.isnan(boots), -np.inf, boots), 2.5, axis=0, method="lower")
    hi = np.percentile(np.where(np.isnan(boots), np.inf, boots), 97.5, axis=0, method="higher")

    def elo(v):
        return round(float(ELO_BASE + ELO_SCALE * v), 2) if np.isfinite(v) else None

    def pct(v):
        return None if np.isnan(v) else round(float(100 * expit(v)), 4)

    for p, k in pid.items():
        way = None if np.isfinite(s[k]) else "undetermined" if np.isnan(s[k]) else "above" if s[k] > 0 else "below"
        # an unbounded score has no interval here (every resample of its record is unbounded too)
        out["models"][p] = {"style_bt_score": elo(s[k]),
                            "style_ci95": [elo(lo[k]), elo(hi[k])] if way is None else None,
                            "style_bt_win_rate": pct(s[k]),
                            "style_bt_win_rate_ci95": [pct(lo[k]), pct(hi[k])] if way is None else None,
                            "style_unbounded": way}
    for j, k in enumerate(used):
        col = bbeta[:, j][np.isfinite(bbeta[:, j])]
        out["coefficients"][FEATURES[k]] = {
            "coef": round(float(beta[j]), 6), "rms": round(float(rms[k]), 6),
            "ci95": [round(float(np.percentile(col, 2.5)), 6), round(float(np.percentile(col, 97.5)), 6)]}
    return out


def coefficients_text(coefs: dict) -> str:
    """One line: each fitted coefficient with its interval, the left-out features named."""
    parts = []
    for f in FEATURES:
        c = coefs.get(f)
        parts.append(f"{f} n/a (never differs)" if c is None else
                     f"{f} {c['coef']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
    return "; ".join(parts)


# ---------------------------------------------------------------- for eval leaderboard

COLUMNS = ("style_bt_score", "style_ci95", "style_bt_win_rate", "style_bt_win_rate_ci95")


def board(games: list[tuple], baseline: str, placed: set[str], rounds: int, seed: int) -> dict | None:
    """``style_control`` over the games among the ``placed`` models (those the raw games link to the
    baseline) whose two texts are known; None when none of them involves the baseline."""
    games = [g for g in games if g[1] in placed and g[2] in placed]
    if not any(baseline in g[1:3] for g in games):
        return None
    return style_control(games, baseline, rounds, seed)


def row_note(model: str, sc: dict | None, n_style: int, n_games: int, null: bool) -> str | None:
    """Why a row's style-controlled columns are empty or rest on part of its games (None: nothing to say)."""
    if null:
        return ("left out of the shared fits (style control, shared-slope length control) so that the probe "
                "does not move the other models; its shared-slope rate is fitted alone")
    if sc is None:
        return None  # no game with both texts: the length-controlled note says why
    if model not in sc["models"] or not n_style:
        return ("no style-controlled score: the texts of its answers (or the baseline's) are unknown; review "
                "files hold answer ids: pass the answer files with --answers")
    if sc["models"][model]["style_unbounded"] in ("above", "below"):
        return "style-controlled score unbounded, as its Bradley-Terry score"
    if n_style < n_games:
        return f"style control on {n_style} of its {n_games} judgments (the texts of the others are unknown)"
    return None


def board_notes(sc: dict | None) -> list[str]:
    if sc is None or not sc["separated"]:
        return []  # the coefficients are shown apart (style_text)
    return [f"style control: not identified: the {', '.join(sc['separated'])} covariate(s) predict every "
            "verdict (the judge's verdict is a step in style, e.g. the longer answer always wins), so no "
            "maximum-likelihood estimate exists; the style_* columns are empty"]


def style_text(sc: dict | None) -> str | None:
    """The fitted coefficients, one line (None without a fit)."""
    if sc is None or sc["separated"]:
        return None
    return (f"style control ({sc['games']} judgments; coefficients in logits per standard unit, + = the judge "
            f"prefers more of it; 95% bootstrap intervals): {coefficients_text(sc['coefficients'])}")
