"""The statistics of ``eval leaderboard``: AlpacaEval's raw win-rate columns, a length-controlled
win rate with one length slope for the whole board, and Bradley-Terry scores with bootstrap
intervals. Pure numpy/scipy; no data from a hub. (AlpacaEval's own length-controlled estimator, the
columns ``length_controlled_winrate`` and ``lc_standard_error``, is in ``eval.alpaca_lc``.)

Preferences are AlpacaEval's: a number in [1, 2], 2 when the evaluated model is preferred over the
baseline, 1.5 (or 0, in files where 0 marks a tie) a draw, None when the judge gave none.

**Shared-slope length-controlled win rate** (``length_controlled``; columns
``lc_shared_slope_winrate`` and ``lc_shared_slope_se``). Not AlpacaEval's estimator (that one fits
each model alone): the length bias belongs to the judge, so it is one slope shared by every model of
the leaderboard, and the instruction difficulty is estimated from the annotations given:

    logit P(m preferred over the baseline on instruction i) = theta_m + beta * x_mi + gamma_i
    x_mi    = tanh((len_mi - len_base_i) / sd_m)     sd_m: sd (ddof=1) of len_m - len_base over m's rows
    gamma_i ~ Normal(0, tau^2)                        instruction difficulty, shared by all models,
                                                      integrated out (adaptive Gauss-Hermite)
    beta    ~ Normal(0, 1.59^2)                       the judge's length slope, one for the board
    theta_m ~ Normal(0, 10^2)                         (keeps a model that wins everything finite)

    LC_m = 100 * mean_i E[ sigmoid(theta_m + gamma_i) | the annotations of instruction i ]

i.e. each model's predicted win rate with the length term at zero, averaged over its instructions,
the difficulty of each instruction taken from its posterior given every model's annotation of it.
Preferences enter as soft labels (y = preference - 1). The fit is a MAP estimate by Newton's
method (exact gradient and Hessian for fixed quadrature nodes, nodes re-centred between rounds).
Because the slope and the difficulties are shared, a model's figure moves a little with the other
models on the board (on AlpacaEval's two shared models: 26.17 alone, 26.62 together).

Why this shape. tanh of the standardised difference is AlpacaEval's own feature, so a model far
longer or shorter than the baseline gets a bounded correction (at most beta), never an
extrapolated one; one beta for all models means a model with few annotations, or with lengths
that barely vary, borrows the judge's bias from the others instead of fitting its own slope to
noise. The prior of beta: AlpacaEval's published GPT-4-turbo weights (tatsu-lab/alpaca_eval @
54a52ec, src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1/
baseline_gpt4_1106_preview.csv; 185 models, leaving out the baseline's zero row and ``example``)
have length slopes (minus the ``np.tanh(std_delta_len)`` column: its delta is baseline - model) of
mean 1.545, sd 0.357, root mean square 1.586, range 0.25-2.98. The prior is centred at 0 with that
root mean square as its sd: wide enough for every published slope (the largest is 1.9 sd out), and
centred at 0 so that a judge whose annotations show no length preference is given none: a judge that
ties everything gets exactly 50 (centred at 1.545 it got 52.5). On AlpacaEval's own annotations the
data decide (beta 1.08 against 1.15 with the old N(1.55, 0.36^2) prior; the rates move 0.2 points).
tau = 1.5 logits is a weak prior: AlpacaEval's published lc_standard_error of the two shared models
(0.64, 0.62) implies a difficulty term of sd about 0.8-1.0 logits.

``lc_shared_slope_se`` is a sandwich (influence-function) standard error over instructions that
includes the uncertainty of the fitted theta and beta: a sampling error comparable to the raw
``standard_error`` (checked against the spread of the estimate over simulated replicates).

**Bradley-Terry** (``bradley_terry``): P(a beats b) = sigmoid(s_a - s_b), soft labels, fitted by
Newton, the baseline anchored at 0; 95% intervals are percentiles of fits on question-level bootstrap
resamples (every comparison of a drawn question comes along). A model that wins every game it plays
(more generally: a group of models that never loses anything to the baseline's side) has no finite
maximum-likelihood score: its score is reported as unbounded (null, upper end of ``ci95`` null), its
``bt_win_rate`` as the limit 100, and the lower end of its interval from the likelihood ratio (the
offset at which the profile log-likelihood is 1.92 = chi2(1, 0.95) / 2 below its supremum), since
every bootstrap resample of such a record is unbounded too. Scores are reported on the Elo scale
Chatbot Arena uses: 1000 + 400 / ln 10 * s.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import expit, log_expit, logsumexp

BETA_PRIOR = (0.0, 1.59)  # mean, sd of the judge's length slope: sd = RMS of AlpacaEval 2's 185 published slopes
TAU = 1.5  # sd of instruction difficulty (logits)
THETA_SD = 10.0
NODES = 15  # Gauss-Hermite nodes per instruction
ELO_SCALE, ELO_BASE = 400 / math.log(10), 1000.0


# ---------------------------------------------------------------- raw columns (AlpacaEval's)


def as_preference(p) -> float | None:
    """A preference as a number in [1, 2] (0, AlpacaEval's other tie mark, is 1.5), or None when
    there is none (null, NaN) or it is outside [1, 2]."""
    if p is None or isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
        return None
    p = 1.5 if p == 0 else float(p)
    return p if 1.0 <= p <= 2.0 else None


def raw_metrics(preferences: Sequence[float | None], lengths: Sequence[int] | None) -> dict:
    """AlpacaEval's ``win_rate``, ``standard_error`` (ddof=1), ``n_wins`` (> 1.5), ``n_wins_base``
    (< 1.5), ``n_draws`` (= 1.5), ``n_total``, ``discrete_win_rate`` (draws count half) and
    ``avg_length`` (the int of the mean characters of all the model's outputs, as AlpacaEval truncates),
    from preferences already mapped by ``as_preference`` (None = no preference, counted apart)."""
    q = np.array([p - 1.0 for p in preferences if p is not None], dtype=float)
    n = len(q)
    out = {"win_rate": None, "standard_error": None, "n_wins": int((q > 0.5).sum()), "n_wins_base": int((q < 0.5).sum()),
           "n_draws": int((q == 0.5).sum()), "n_total": n, "discrete_win_rate": None,
           "avg_length": int(np.mean(lengths)) if lengths else None}
    if n:
        out["win_rate"] = 100.0 * math.fsum(q) / n
        out["standard_error"] = float(100.0 * np.std(q, ddof=1) / math.sqrt(n)) if n > 1 else None
        out["discrete_win_rate"] = 100.0 * (out["n_wins"] + out["n_draws"] / 2) / n
    return out


# ---------------------------------------------------------------- length-controlled win rate


class _GLMM:
    """Soft-label logistic model with shared length slope and integrated instruction difficulty.

    Parameters phi = (theta_1..theta_M, beta). For fixed quadrature nodes the log posterior, its
    gradient and Hessian are exact; nodes are re-centred on each instruction's posterior mode
    between Newton rounds (adaptive quadrature)."""

    def __init__(self, Y, X, W, beta_prior, tau):
        self.Y, self.X, self.W = Y, X, W
        self.N, self.M = Y.shape
        self.tau = float(tau)
        z, w = np.polynomial.hermite_e.hermegauss(NODES if self.tau > 0 else 1)
        self.z, self.logw = z, np.log(w / w.sum())
        self.b0, self.bsd = beta_prior
        self.set_nodes(np.zeros(self.N), np.full(self.N, max(self.tau, 1e-12)))

    def set_nodes(self, mu, s):
        self.G = mu[:, None] + s[:, None] * self.z[None, :]
        if self.tau <= 0:
            self.G[:] = 0.0
            self.logom = np.zeros_like(self.G)
            return
        self.logom = (self.logw[None, :] + np.log(s)[:, None] + 0.5 * self.z[None, :] ** 2
                      - 0.5 * (self.G / self.tau) ** 2 - math.log(self.tau))

    def recentre(self, phi):
        if self.tau <= 0:
            return
        a = phi[: self.M] + phi[self.M] * self.X
        g = np.zeros(self.N)
        for _ in range(50):
            p = expit(a + g[:, None])
            step = ((self.W * (self.Y - p)).sum(1) - g / self.tau ** 2) / ((self.W * p * (1 - p)).sum(1) + 1 / self.tau ** 2)
            g += step
            if np.max(np.abs(step)) < 1e-10:
                break
        p = expit(a + g[:, None])
        self.set_nodes(g, 1 / np.sqrt((self.W * p * (1 - p)).sum(1) + 1 / self.tau ** 2))

    def _terms(self, phi):
        eta = (phi[: self.M] + phi[self.M] * self.X)[:, :, None] + self.G[:, None, :]
        ll = (self.W[:, :, None] * (self.Y[:, :, None] * log_expit(eta) + (1 - self.Y[:, :, None]) * log_expit(-eta))).sum(1)
        lp = self.logom + ll
        li = logsumexp(lp, axis=1)
        return eta, li, np.exp(lp - li[:, None])

    def _prior(self, phi):
        th, b = phi[: self.M], phi[self.M]
        f = -0.5 * ((b - self.b0) / self.bsd) ** 2 - 0.5 * np.sum((th / THETA_SD) ** 2)
        g = np.concatenate([-th / THETA_SD ** 2, [-(b - self.b0) / self.bsd ** 2]])
        h = -np.diag(np.concatenate([np.full(self.M, 1 / THETA_SD ** 2), [1 / self.bsd ** 2]]))
        return f, g, h

    def logpost(self, phi):
        return self._terms(phi)[1].sum() + self._prior(phi)[0]

    def derivatives(self, phi):
        eta, li, post = self._terms(phi)
        sig = expit(eta)
        r = self.W[:, :, None] * (self.Y[:, :, None] - sig)
        gk = np.concatenate([r.transpose(0, 2, 1), np.einsum("imk,im->ik", r, self.X)[:, :, None]], axis=2)
        gbar = np.einsum("ik,ikp->ip", post, gk)
        f0, g0, h0 = self._prior(phi)
        v = (self.W[:, :, None] * sig * (1 - sig) * post[:, None, :]).sum(2)
        P = self.M + 1
        H = np.zeros((P, P))
        H[np.arange(self.M), np.arange(self.M)] -= v.sum(0)
        H[: self.M, self.M] -= (v * self.X).sum(0)
        H[self.M, : self.M] = H[: self.M, self.M]
        H[self.M, self.M] -= (v * self.X ** 2).sum()
        A = (np.sqrt(post)[:, :, None] * gk).reshape(-1, P)
        H += A.T @ A - gbar.T @ gbar
        return {"f": li.sum() + f0, "grad": gbar.sum(0) + g0, "hess": H + h0, "scores": gbar, "gk": gk, "post": post}

    def fit(self, phi):
        for _ in range(8):
            self.recentre(phi)
            for _ in range(100):
                d = self.derivatives(phi)
                step = np.linalg.solve(d["hess"], -d["grad"])
                t = 1.0
                while t > 1e-8 and self.logpost(phi + t * step) < d["f"] - 1e-12:
                    t *= 0.5
                phi = phi + t * step
                if np.max(np.abs(t * step)) < 1e-9:
                    break
            before = self.logpost(phi)
            self.recentre(phi)
            if abs(self.logpost(phi) - before) < 1e-8:
                break
        return phi


def length_controlled(rows: dict[str, list[tuple[str, float | None, int, int]]],
                      beta_prior: tuple[float, float] = BETA_PRIOR, tau: float = TAU) -> dict:
    """Length-controlled win rates of the models of one leaderboard (one judge, one baseline).

    ``rows``: {model: [(instruction key, preference in [1, 2] or None, model length, baseline
    length), ...]}. Returns {"models": {model: {"lc", "lc_se"}} in percent, "beta", "beta_se",
    "tau"} (see the module docstring for the model)."""
    models = [m for m, r in rows.items() if any(p is not None for _, p, _, _ in r)]
    if not models:
        return {"models": {}, "beta": None, "beta_se": None, "tau": tau}
    index: dict[str, int] = {}
    for m in models:
        for key, p, _, _ in rows[m]:
            if p is not None:
                index.setdefault(key, len(index))
    N, M = len(index), len(models)
    Y, X, W = np.zeros((N, M)), np.zeros((N, M)), np.zeros((N, M))
    for j, m in enumerate(models):
        dl = np.array([lm - lb for _, _, lm, lb in rows[m]], dtype=float)
        sd = float(np.std(dl, ddof=1)) if len(dl) > 1 else 0.0
        x = np.tanh(dl / sd) if sd > 0 else np.zeros_like(dl)
        for (key, p, _, _), xi in zip(rows[m], x):
            if p is not None:
                i = index[key]
                Y[i, j], X[i, j], W[i, j] = p - 1.0, xi, 1.0
    glmm = _GLMM(Y, X, W, beta_prior, tau)
    ybar = np.clip((Y * W).sum(0) / W.sum(0), 1e-3, 1 - 1e-3)
    phi = glmm.fit(np.concatenate([np.log(ybar / (1 - ybar)), [beta_prior[0]]]))
    d = glmm.derivatives(phi)
    post = d["post"]
    sm = expit(phi[:M][None, :, None] + glmm.G[:, None, :])  # length term at zero
    h = np.einsum("ik,imk->im", post, sm)
    n_m = W.sum(0)
    lc = (h * W).sum(0) / n_m
    # sandwich SE over instructions: the mean's own spread plus the fitted parameters' influence
    Hinv = np.linalg.inv(-d["hess"])
    gc = d["gk"] - d["scores"][:, None, :]
    grad_lc = np.zeros((M, M + 1))
    grad_lc[np.arange(M), np.arange(M)] = np.einsum("ik,imk,im->m", post, sm * (1 - sm), W) / n_m
    grad_lc += np.einsum("ik,ikp,imk,im->mp", post, gc, sm, W) / n_m[:, None]
    influence = W * (h - lc[None, :]) / n_m[None, :] + d["scores"] @ Hinv @ grad_lc.T
    se = np.sqrt((influence ** 2).sum(0) * N / max(N - 1, 1))
    return {"models": {m: {"lc": float(100 * lc[j]), "lc_se": float(100 * se[j])} for j, m in enumerate(models)},
            "beta": float(phi[M]), "beta_se": float(math.sqrt(Hinv[M, M])), "tau": tau}


# ---------------------------------------------------------------- Bradley-Terry


def _sides(ia, ib, y, w, n, anchor) -> np.ndarray:
    """Where each player's maximum-likelihood score lies relative to the anchor's: 0 finite (the
    anchor's strongly connected component of the graph "a took something from b"), +1 at +infinity
    (reaches the anchor in that graph, is not reached from it), -1 at -infinity, nan undetermined."""
    took_a, took_b = w * y > 0, w * (1 - y) > 0
    beat = np.zeros((n, n), bool)  # a few dozen players at most: a dense matrix is the quick way
    beat[ia[took_a], ib[took_a]] = True
    beat[ib[took_b], ia[took_b]] = True

    def reach(m):
        seen = np.zeros(n, bool)
        seen[anchor] = True
        while True:
            more = seen | m[seen].any(0)
            if (more == seen).all():
                return seen
            seen = more

    below, above = reach(beat), reach(beat.T)
    side = np.full(n, np.nan)
    side[above & below] = 0.0
    side[above & ~below] = 1.0
    side[below & ~above] = -1.0
    return side


def _newton(ia, ib, y, w, n, free, s, ridge=1e-6):
    """Scores of the ``free`` players maximising the likelihood of the weighted games, the others fixed at ``s``."""
    s = s.copy()
    for _ in range(100):
        p = expit(s[ia] - s[ib])
        r = w * (y - p)
        g = np.bincount(ia, r, n) - np.bincount(ib, r, n) - ridge * s
        v = w * p * (1 - p)
        H = (np.bincount(ia * n + ia, v, n * n) + np.bincount(ib * n + ib, v, n * n) - np.bincount(ia * n + ib, v, n * n)
             - np.bincount(ib * n + ia, v, n * n)).reshape(n, n) + ridge * np.eye(n)
        step = np.zeros(n)
        step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])
        s += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return s


def _bt_fit(ia, ib, y, w, n, anchor, s0=None):
    """Maximum-likelihood scores (anchor 0): finite for the anchor's component, +-inf beyond it, nan
    where the games do not say (see ``_sides``)."""
    side = _sides(ia, ib, y, w, n, anchor)
    finite = side == 0
    keep = finite[ia] & finite[ib] & (w > 0)
    free = finite & (np.arange(n) != anchor)
    s = np.zeros(n) if s0 is None else np.where(np.isfinite(s0), s0, 0.0)
    s = _newton(ia[keep], ib[keep], y[keep], w[keep], n, free, s)
    return np.where(finite, s, np.where(side > 0, np.inf, np.where(side < 0, -np.inf, np.nan)))


def _loglik(ia, ib, y, s):
    e = s[ia] - s[ib]
    return float((y * log_expit(e) + (1 - y) * log_expit(-e)).sum())


def _profile_bound(ia, ib, y, n, anchor, s, group) -> np.ndarray | None:
    """The finite end of the interval of a ``group`` of players at +-infinity: their scores (their
    differences among themselves kept) at which the profile log-likelihood of the games among them and
    the finite players is 1.92 below its supremum; None when no game links them to the finite players."""
    from scipy.optimize import brentq

    finite = np.isfinite(s)
    if not ((group[ia] & finite[ib]) | (finite[ia] & group[ib])).any():
        return None
    own = group[ia] & group[ib]
    first = np.flatnonzero(group)[0]
    inner = _newton(ia[own], ib[own], y[own], np.ones(int(own.sum())), n, group & (np.arange(n) != first), np.zeros(n))
    keep = (finite[ia] | group[ia]) & (finite[ib] | group[ib])
    a, b, yy, ones = ia[keep], ib[keep], y[keep], np.ones(int(keep.sum()))
    base, free = np.where(finite, s, 0.0), finite & (np.arange(n) != anchor)
    sign = 1.0 if s[first] > 0 else -1.0
    top = _loglik(a, b, yy, np.where(group, inner + sign * 1e3, base))  # the supremum, as the offset runs away

    def gap(delta):
        t = _newton(a, b, yy, ones, n, free, np.where(group, inner + delta, base))
        return _loglik(a, b, yy, t) - (top - 1.92)

    try:
        return inner + brentq(gap, -60.0, 60.0, xtol=1e-6)
    except ValueError:  # no sign change within 60 logits (Elo +-10400): say nothing rather than guess
        return None


def bradley_terry(games: list[tuple[str, str, str, float]], baseline: str, rounds: int = 1000, seed: int = 0) -> dict:
    """{model: {"bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95", "bt_unbounded"}} from ``games`` =
    [(cluster, a, b, y)], y = P(a beats b) in [0, 1], ``cluster`` the question (the bootstrap unit).
    Scores on the Elo scale (baseline 1000); ``bt_win_rate`` = 100 * sigmoid(s), the predicted win
    rate against the baseline. An unbounded score or interval end is None (``bt_unbounded`` says
    which way: "above", "below" or "undetermined")."""
    players = sorted({g[1] for g in games} | {g[2] for g in games} | {baseline})
    pid = {p: k for k, p in enumerate(players)}
    clusters = sorted({g[0] for g in games}, key=str)
    cid = {c: k for k, c in enumerate(clusters)}
    ia = np.array([pid[g[1]] for g in games], dtype=int)
    ib = np.array([pid[g[2]] for g in games], dtype=int)
    y = np.array([g[3] for g in games], dtype=float)
    ci = np.array([cid[g[0]] for g in games], dtype=int)
    anchor, n = pid[baseline], len(players)
    s = _bt_fit(ia, ib, y, np.ones_like(y), n, anchor)
    rng = np.random.default_rng(seed)
    boots = np.empty((rounds, n))
    for b in range(rounds):
        counts = np.bincount(rng.integers(0, len(clusters), len(clusters)), minlength=len(clusters)).astype(float)
        boots[b] = _bt_fit(ia, ib, y, counts[ci], n, anchor, s0=s)
    # order statistics, never interpolated (an interpolation between -inf and a number is nan)
    lo = np.percentile(np.where(np.isnan(boots), -np.inf, boots), 2.5, axis=0, method="lower")
    hi = np.percentile(np.where(np.isnan(boots), np.inf, boots), 97.5, axis=0, method="higher")
    for k in range(n):  # unbounded point estimate: the finite end from the likelihood ratio
        if np.isinf(s[k]):
            group = s == s[k]
            bound = _profile_bound(ia, ib, y, n, anchor, s, group)
            end = (-np.inf if s[k] > 0 else np.inf) if bound is None else bound[k]
            lo[k], hi[k] = (end, np.inf) if s[k] > 0 else (-np.inf, end)
        elif np.isnan(s[k]):
            lo[k], hi[k] = -np.inf, np.inf

    def elo(v):
        return round(float(ELO_BASE + ELO_SCALE * v), 2) if np.isfinite(v) else None

    def pct(v):
        return None if np.isnan(v) else round(float(100 * expit(v)), 4)

    def way(v):
        return None if np.isfinite(v) else "undetermined" if np.isnan(v) else "above" if v > 0 else "below"

    return {p: {"bt_score": elo(s[k]), "ci95": [elo(lo[k]), elo(hi[k])], "bt_win_rate": pct(s[k]),
                "bt_win_rate_ci95": [pct(lo[k]), pct(hi[k])], "bt_unbounded": way(s[k])} for p, k in pid.items()}
