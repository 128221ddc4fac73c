"""Style control (issue 21, part 1) checked against what it claims: the markdown counts of FastChat's
``count_markdown_elements`` on answers counted by hand, the style-controlled Bradley-Terry fit against
statsmodels' logistic regression on the same design, a judge whose verdict is a step in length found
out exactly, and the control measured at equal style (not at the board's average style gap)."""

import math

import numpy as np
import pytest
import statsmodels.api as sm

from gpt4llm.eval import style, winrates

ELO = 400 / math.log(10)

# (answer, (characters, headers, bold, list items)) counted by hand, FastChat's rules: a header is 1-6
# '#' then whitespace at a line start; bold is **x** or __x__ within a line; list items are "1. ",
# "- ", "* ", "+ " at a line start; the inside of ```code``` is deleted first (only the counts).
ANSWERS = [
    ("Plain text, no markdown at all.", (31, 0, 0, 0)),
    ("# Title\n## Part\n####### seven is no header\n#nospace", (51, 2, 0, 0)),
    ("**Bold** and __also bold__ but **not\nthis** end", (47, 0, 2, 0)),
    ("Steps:\n1. one\n2. two\n- dash\n* star\n+ plus\n-no space", (51, 0, 0, 5)),
    ("```\n# not a header\n- not an item\n**not bold**\n```\n# Header\n- item", (65, 1, 0, 1)),
    ("", (0, 0, 0, 0)),
]


@pytest.mark.parametrize("text,expected", ANSWERS)
def test_markdown_elements_are_counted_as_fastchat_counts_them(text, expected):
    assert len(text) == expected[0]
    assert style.elements(text) == expected


def texts(rng, n):
    """Answers of random length and formatting: words, bold phrases, list items, headers."""
    out = []
    for _ in range(n):
        k = [int(rng.integers(5, 120)), int(rng.integers(0, 4)), int(rng.integers(0, 6)), int(rng.integers(0, 3))]
        out.append(" ".join(["word"] * k[0]) + "".join(f"\n**point {i}**" for i in range(k[1]))
                   + "".join(f"\n- item {i}" for i in range(k[2])) + "".join(f"\n## Section {i}" for i in range(k[3])))
    return out


def test_style_controlled_bt_equals_a_logistic_regression_fitted_by_statsmodels():
    """The same design built by hand (players +1/-1 with the baseline's column dropped; each style
    covariate (a - b) / (a + b + 1) divided by its root mean square) fitted by statsmodels' GLM
    (binomial, soft labels: a tie is 0.5): coefficients and Elo scores agree."""
    rng = np.random.default_rng(7)
    players, strength = ["base", "m1", "m2", "m3"], {"base": 0.0, "m1": 0.6, "m2": -0.4, "m3": 0.2}
    games, design, ys = [], [], []
    for q in range(60):
        pairs = [("m1", "base"), ("m2", "base"), ("m3", "base"), ("m1", "m2")]
        ts = texts(rng, 2 * len(pairs))
        for k, (a, b) in enumerate(pairs):
            ta, tb = ts[2 * k], ts[2 * k + 1]
            ea, eb = np.array(style.elements(ta), float), np.array(style.elements(tb), float)
            x = (ea - eb) / (ea + eb + 1)
            eta = strength[a] - strength[b] + 0.8 * x[0] + 0.5 * x[1] + 0.3 * x[3]
            y = float(rng.random() < 1 / (1 + math.exp(-eta)))
            y = 0.5 if q % 9 == 0 else y  # some ties
            games.append((q, a, b, y, ta, tb))
            row = [(p == a) - (p == b) for p in players[1:]]
            design.append(row + list(x))
            ys.append(y)
    X, y = np.array(design, float), np.array(ys)
    X[:, 3:] /= np.sqrt((X[:, 3:] ** 2).mean(0))
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-12)
    got = style.style_control(games, "base", rounds=200, seed=0)
    for k, p in enumerate(players[1:]):
        assert got["models"][p]["style_bt_score"] == pytest.approx(1000 + ELO * fit.params[k], abs=0.02), p
        lo, hi = got["models"][p]["style_ci95"]
        assert lo < got["models"][p]["style_bt_score"] < hi
    for k, f in enumerate(style.FEATURES):
        assert got["coefficients"][f]["coef"] == pytest.approx(fit.params[3 + k], abs=1e-5), f
    assert got["models"]["base"]["style_bt_score"] == 1000 and got["separated"] is None


def test_control_is_at_equal_style_not_at_the_boards_average_style_gap():
    """One model, always longer than the baseline, of the same quality; the judge rewards only the
    length covariate. Raw Bradley-Terry credits the length (about 1140); the style-controlled score
    is the baseline's (1000 within its interval). Centring the covariate on these one-sided games,
    as a z-score over model-minus-baseline battles would, leaves the score where the raw one is."""
    rng = np.random.default_rng(3)
    games, raw = [], []
    for q in range(400):
        lb = int(rng.integers(200, 800))
        lm = lb + int(rng.integers(50, 900))
        x = (lm - lb) / (lm + lb + 1)
        y = float(rng.random() < 1 / (1 + math.exp(-3.0 * x)))
        games.append((q, "m", "base", y, "w" * lm, "w" * lb))
        raw.append((q, "m", "base", y))
    sc = style.style_control(games, "base", rounds=200, seed=0)["models"]["m"]
    bt = winrates.bradley_terry(raw, "base", rounds=200)["m"]
    assert bt["ci95"][0] > 1080
    assert sc["style_ci95"][0] < 1000 < sc["style_ci95"][1]
    # the centred variant, by hand: the intercept of a regression on the demeaned covariate is the raw score
    xs = np.array([(len(g[4]) - len(g[5])) / (len(g[4]) + len(g[5]) + 1) for g in games])
    ys = np.array([g[3] for g in games])
    centred = sm.GLM(ys, np.column_stack([np.ones_like(xs), (xs - xs.mean()) / xs.std()]),
                     family=sm.families.Binomial()).fit()
    assert abs(1000 + ELO * centred.params[0] - bt["bt_score"]) < 15


def test_a_verdict_that_is_a_step_in_length_has_no_estimate_and_says_so():
    """The longer answer always wins: the length covariate separates the verdicts, no maximum-likelihood
    estimate exists (the likelihood keeps rising along the length coefficient): empty, named."""
    rng = np.random.default_rng(1)
    ts = texts(rng, 200)
    games = [(q, "m", "base", 1.0 if len(ts[2 * q]) > len(ts[2 * q + 1]) else 0.0, ts[2 * q], ts[2 * q + 1])
             for q in range(100) if len(ts[2 * q]) != len(ts[2 * q + 1])]
    got = style.style_control(games, "base", rounds=50)
    assert got["separated"] == ["length"]
    assert got["models"]["m"]["style_bt_score"] is None and got["coefficients"]["length"] is None
    # one tie that goes against the step (a long answer judged equal) restores a finite estimate
    games.append((999, "m", "base", 0.5, "w" * 900, "w" * 10))
    assert style.style_control(games, "base", rounds=50)["separated"] is None


def test_a_model_that_wins_everything_is_unbounded_and_a_feature_that_never_varies_is_left_out():
    games = [(q, "champ", "base", 1.0, f"answer {q} " * (q % 5 + 1), "base answer " * 3) for q in range(30)]
    games += [(q, "m", "base", float(q % 3 == 0), f"other {q} " * (q % 4 + 1), "base answer " * 3) for q in range(30)]
    got = style.style_control(games, "base", rounds=50)
    assert got["models"]["champ"]["style_bt_score"] is None and got["models"]["champ"]["style_unbounded"] == "above"
    assert got["models"]["m"]["style_bt_score"] is not None
    assert got["coefficients"]["headers"] is None and got["coefficients"]["length"] is not None
