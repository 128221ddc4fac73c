"""The statistics of ``eval leaderboard``: AlpacaEval's raw win-rate columns, a length-controlled
win rate, and Bradley-Terry scores with bootstrap intervals. Pure numpy/scipy; no data from a hub.

Preferences are AlpacaEval's: a number in [1, 2], 2 when the evaluated model is preferred over the
baseline, 1.5 (or 0, in files where 0 marks a tie) a draw, None when the judge gave none.

**Length-controlled win rate** (``length_controlled``). AlpacaEval 2 fits, per model, a logistic
regression of the preference on the standardised length difference and on an instruction
difficulty it downloads, and reports the prediction with the length term set to zero. Here the
difficulty is estimated from the annotations given, and the length bias, which belongs to the
judge, is one slope shared by every model of the leaderboard:

    logit P(m preferred over the baseline on instruction i) = theta_m + beta * x_mi + gamma_i
    x_mi    = tanh((len_mi - len_base_i) / sd_m)     sd_m: sd (ddof=1) of len_m - len_base over m's rows
    gamma_i ~ Normal(0, tau^2)                        instruction difficulty, shared by all models,
                                                      integrated out (adaptive Gauss-Hermite)
    beta    ~ Normal(1.55, 0.36^2)                    the judge's length slope, one for the board
    theta_m ~ Normal(0, 10^2)                         (keeps a model that wins everything finite)

    LC_m = 100 * mean_i E[ sigmoid(theta_m + gamma_i) | the annotations of instruction i ]

i.e. each model's predicted win rate with the length term at zero, averaged over its instructions,
the difficulty of each instruction taken from its posterior given every model's annotation of it.
Preferences enter as soft labels (y = preference - 1). The fit is a MAP estimate by Newton's
method (exact gradient and Hessian for fixed quadrature nodes, nodes re-centred between rounds).

Why this shape. tanh of the standardised difference is AlpacaEval's own feature, so a model far
longer or shorter than the baseline gets a bounded correction (at most beta), never an
extrapolated one; one beta for all models means a model with few annotations, or with lengths
that barely vary, borrows the judge's bias from the others instead of fitting its own slope to
noise. The prior's mean and sd are the mean and sd over 183 models of the length coefficient in
AlpacaEval's published GPT-4-turbo weights; tau = 1.5 is the spread of AlpacaEval's own difficulty
term in the same weights. With several models on the same instructions the difficulty is shared
across them; with one model it still absorbs per-instruction noise.

``lc_standard_error`` is a sandwich (influence-function) standard error over instructions that
includes the uncertainty of the fitted theta and beta: a sampling error comparable to the raw
``standard_error``. AlpacaEval's column of that name is the standard error of the mean of its
per-instruction predictions, a measure of how much instructions differ, and is smaller.

**Bradley-Terry** (``bradley_terry``): P(a beats b) = sigmoid(s_a - s_b), soft labels, fitted by
Newton with a tiny ridge (so a model that wins every game stays finite; statsmodels' GLM stops on
such perfect separation), the baseline anchored at 0; 95% intervals are percentiles of fits on
question-level bootstrap resamples (every comparison of a drawn question comes along). Scores are
reported on the Elo scale Chatbot Arena uses: 1000 + 400 / ln 10 * s.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import expit, log_expit, logsumexp

BETA_PRIOR = (1.55, 0.36)  # mean, sd of the judge's length slope (AlpacaEval 2's published weights)
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


def _bt_fit(ia, ib, y, w, n, anchor, s0=None, ridge=1e-6):
    s = np.zeros(n) if s0 is None else s0.copy()
    free = np.arange(n) != anchor
    for _ in range(100):
        p = expit(s[ia] - s[ib])
        r = w * (y - p)
        g = np.bincount(ia, r, n) - np.bincount(ib, r, n) - ridge * s
        v = w * p * (1 - p)
        H = np.zeros((n, n))
        np.add.at(H, (ia, ia), v)
        np.add.at(H, (ib, ib), v)
        np.add.at(H, (ia, ib), -v)
        np.add.at(H, (ib, ia), -v)
        H += ridge * np.eye(n)
        step = np.zeros(n)
        step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])
        s += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return s


def bradley_terry(games: list[tuple[str, str, str, float]], baseline: str, rounds: int = 1000, seed: int = 0) -> dict:
    """{model: {"bt_score", "ci95", "bt_win_rate", "bt_win_rate_ci95"}} from ``games`` =
    [(cluster, a, b, y)], y = P(a beats b) in [0, 1], ``cluster`` the question (the bootstrap unit).
    Scores on the Elo scale (baseline 1000); ``bt_win_rate`` = 100 * sigmoid(s), the predicted win
    rate against the baseline."""
    players = sorted({g[1] for g in games} | {g[2] for g in games} | {baseline})
    pid = {p: k for k, p in enumerate(players)}
    clusters = sorted({g[0] for g in games}, key=str)
    cid = {c: k for k, c in enumerate(clusters)}
    ia = np.array([pid[g[1]] for g in games], dtype=int)
    ib = np.array([pid[g[2]] for g in games], dtype=int)
    y = np.array([g[3] for g in games], dtype=float)
    ci = np.array([cid[g[0]] for g in games], dtype=int)
    anchor = pid[baseline]
    s = _bt_fit(ia, ib, y, np.ones_like(y), len(players), anchor)
    rng = np.random.default_rng(seed)
    boots = np.empty((rounds, len(players)))
    for b in range(rounds):
        counts = np.bincount(rng.integers(0, len(clusters), len(clusters)), minlength=len(clusters)).astype(float)
        boots[b] = _bt_fit(ia, ib, y, counts[ci], len(players), anchor, s0=s)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    elo = lambda v: round(float(ELO_BASE + ELO_SCALE * v), 2)  # noqa: E731
    pct = lambda v: round(float(100 * expit(v)), 4)  # noqa: E731
    return {p: {"bt_score": elo(s[k]), "ci95": [elo(lo[k]), elo(hi[k])], "bt_win_rate": pct(s[k]),
                "bt_win_rate_ci95": [pct(lo[k]), pct(hi[k])]} for p, k in pid.items()}
