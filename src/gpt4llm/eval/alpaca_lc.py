"""AlpacaEval 2's own length-controlled win rate, computed the way its ``metrics/glm_winrate.py``
computes it (tatsu-lab/alpaca_eval @ 19866ff, ``get_length_controlled_winrate`` and
``fit_LogisticRegressionCV``), one model at a time, from that model's annotations alone:

    logit P(model preferred on instruction i) = w_len * tanh(std_delta_len_i) + w_diff * difficulty_i + w_0
    std_delta_len_i = (len(baseline output) - len(model output)) / sd   (sd: pandas .std(), ddof=1, all rows)
    fit:  min ||w||_1 + C * sum_i CE(y_i, sigmoid(x_i . w))    y_i = preference - 1 (soft label), no intercept
          (sklearn LogisticRegressionCV, penalty l1, liblinear, fit_intercept=False: C picked among
          np.logspace(-4, 4, 10) by the log loss of 5-fold GroupKFold, then refit on every row)
    length_controlled_winrate = 100 * mean_i sigmoid(w_diff * difficulty_i + w_0)     (length term at zero)
    lc_standard_error         = 100 * sem_i  sigmoid(w_diff * difficulty_i + w_0)     (ddof=1, every row)

``lc_standard_error`` is AlpacaEval's: the spread of the per-instruction predictions, not the
sampling error of the rate (that one is ``lc_shared_slope_se``'s job, in ``winrates``).

What AlpacaEval downloads at run time (hub dataset ``tatsu-lab/alpaca_eval``, in neither its git
repository nor its wheel) is not shipped here: ``instruction_difficulty.csv`` and ``df_gamed.csv``
(the verbose/concise gpt4_1106_preview annotations that its ``length_controlled_v1`` mixes in with
weight 0.2 / 2 to regularise towards the baseline). So:

- given AlpacaEval's difficulty file (``--instruction-difficulty``, its CSV: the instruction's index
  in AlpacaEval's 805, difficulty) and AlpacaEval annotation files in AlpacaEval's order, the fit is
  AlpacaEval's ``length_controlled_noreg`` GLM (``length_controlled_v1`` less the gamed rows);
- otherwise (the fallback) AlpacaEval's ``length_controlled_minimal`` GLM: the same fit without the
  difficulty term. Its predictions are then one number, so ``lc_standard_error`` (their spread) is 0
  by AlpacaEval's formula and is reported empty. On AlpacaEval 2's own annotations of the two models
  in ../shared this gives 25.93 and 63.45 against the published 25.27 and 63.58.

Fewer than 5 annotations cannot be split in 5 folds (sklearn raises); AlpacaEval's own no-CV branch
(``n_splits=0``: ``LogisticRegression(C=100)``) is used then. A judge that ties everything gives
exactly 50: every gradient vanishes at w = 0, the minimiser of the L1 problem.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import expit, log_expit

from gpt4llm.errors import UserError

CS = np.logspace(-4, 4, 10)  # LogisticRegressionCV(Cs=10)
N_SPLITS = 5  # GLM_INFO["length_controlled_v1"]["kwargs"]["n_splits"]
C_NO_CV = 100.0  # fit_LogisticRegressionCV(C=100), its n_splits=0 branch
EPS = 1e-15  # glm_winrate.logloss clips predictions to [eps, 1 - eps]


def l1_logistic(X: np.ndarray, y: np.ndarray, C: float) -> np.ndarray:
    """argmin_w ||w||_1 + C * sum_i [-y_i log sigmoid(x_i w) - (1 - y_i) log sigmoid(-x_i w)]: what
    liblinear solves for sklearn's L1 LogisticRegression without intercept when AlpacaEval duplicates
    each row as a label-1 row weighted y and a label-0 row weighted 1 - y. Solved as liblinear does
    (newGLMNET: a proximal Newton step by coordinate descent, then a backtracking line search), to a far
    tighter tolerance than liblinear's 1e-4; with 2 or 3 features each step costs one pass over the rows."""
    k = X.shape[1]
    w = np.zeros(k)

    def objective(v):
        e = X @ v
        return float(np.abs(v).sum() - C * (y * log_expit(e) + (1 - y) * log_expit(-e)).sum())

    f = objective(w)
    for _ in range(200):
        p = expit(X @ w)
        g = C * (X.T @ (p - y))
        H = C * (X.T * (p * (1 - p))) @ X + 1e-12 * np.eye(k)
        d = np.zeros(k)
        for _ in range(10_000):  # min_d ||w + d||_1 + g.d + d'Hd/2, one coordinate at a time (soft threshold)
            moved = 0.0
            for j in range(k):
                a = H[j, j]
                u = w[j] - (g[j] + H[j] @ d - a * d[j]) / a
                z = math.copysign(max(abs(u) - 1.0 / a, 0.0), u)
                moved = max(moved, abs(z - w[j] - d[j]))
                d[j] = z - w[j]
            if moved < 1e-14:
                break
        decrease = float(g @ d + np.abs(w + d).sum() - np.abs(w).sum())
        if decrease > -1e-13 * max(1.0, abs(f)):
            break
        t = 1.0
        while t > 1e-12 and (new := objective(w + t * d)) > f + 0.01 * t * decrease:
            t *= 0.5
        w, f = w + t * d, new
    return w


def folds(n: int, k: int = N_SPLITS) -> np.ndarray:
    """The fold of each row under sklearn's GroupKFold when every group (an annotation, whose two
    duplicated rows stay together) has the same size: groups go, largest first (argsort of equal sizes,
    reversed: last row first), each to the lightest fold, i.e. row g to fold (n - 1 - g) % k."""
    return (n - 1 - np.arange(n)) % k


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """AlpacaEval's fit_LogisticRegressionCV(is_ytrue_proba=True, n_splits=5): (weights, chosen C)."""
    n = len(y)
    if n < N_SPLITS:
        return l1_logistic(X, y, C_NO_CV), C_NO_CV
    fold = folds(n)
    scores = np.zeros(len(CS))  # sum over folds of -log loss (sklearn sums fold scores, argmax, first on ties)
    for f in range(N_SPLITS):
        tr, te = fold != f, fold == f
        for c, C in enumerate(CS):
            w = l1_logistic(X[tr], y[tr], C)
            scores[c] -= _logloss(y[te], expit(X[te] @ w))
    C = float(CS[int(np.argmax(scores))])
    return l1_logistic(X, y, C), C


def length_controlled(preferences: Sequence[float | None], model_len: Sequence[int], baseline_len: Sequence[int],
                      difficulty: Sequence[float] | None = None) -> dict:
    """One model's AlpacaEval length-controlled win rate against the baseline of its annotations.

    ``preferences``: AlpacaEval's, in [1, 2] (0 already mapped to 1.5) or None; one per annotation,
    with both outputs' lengths; ``difficulty``: AlpacaEval's instruction difficulty of each annotation,
    or None for the fallback. Returns {"lc", "lc_se", "weights", "C", "glm"} (lc_se None when the
    predictions cannot spread: no difficulty, or a single annotation)."""
    delta = np.asarray(baseline_len, dtype=float) - np.asarray(model_len, dtype=float)
    sd = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    x = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    d = np.zeros_like(delta) if difficulty is None else np.asarray(difficulty, dtype=float)
    cols = [x, np.ones_like(x)] if difficulty is None else [x, d, np.ones_like(x)]
    X = np.column_stack(cols)
    has = np.array([p is not None for p in preferences])
    y = np.array([p - 1.0 for p in preferences if p is not None], dtype=float)
    w, C = fit(X[has], y)
    w0, wd = w[-1], (0.0 if difficulty is None else w[1])
    pred = expit(w0 + wd * d)  # every annotation, with or without a preference, as AlpacaEval's df_X_test
    se = float(100 * np.std(pred, ddof=1) / math.sqrt(len(pred))) if difficulty is not None and len(pred) > 1 else None
    names = ["np.tanh(std_delta_len)", "not_gamed_baseline.astype(float)"] if difficulty is None else \
        ["np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)"]
    return {"lc": float(100 * pred.mean()), "lc_se": se, "weights": dict(zip(names, map(float, w))), "C": C,
            "glm": "length_controlled_minimal" if difficulty is None else "length_controlled_noreg"}


def read_difficulty(path: str | Path) -> dict[int, float]:
    """AlpacaEval's instruction_difficulty.csv: a header, then (index in AlpacaEval's 805
    instructions, difficulty) per line, as ``pd.read_csv(path, index_col=0).squeeze()`` reads it."""
    out: dict[int, float] = {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise UserError(f"--instruction-difficulty {path}: cannot read it ({e.strerror})") from e
    for n, row in enumerate(rows[1:], start=2):
        try:
            out[int(row[0])] = float(row[1])
        except (ValueError, IndexError):
            raise UserError(f"{path}:{n}: expected 'index,difficulty' (AlpacaEval's instruction_difficulty.csv), "
                            f"got {','.join(row)[:60]!r}") from None
    if not out:
        raise UserError(f"{path}: no difficulties in the file (AlpacaEval's instruction_difficulty.csv has 805)")
    return out
