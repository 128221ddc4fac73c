"""Figures in the paper's style (matplotlib, Agg: no display needed). Each saves PNG and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from gpt4llm.settings import Opt, Settings


class PaperFiguresSettings(Settings):
    """gpt4llm plots paper: redraw the paper's figures from its published numbers (judge, ranking groups, Chinese, ROUGE, HHH)."""

    output_dir: Annotated[Path, Opt("-o")] = Path("paper_figures")
    """Where the figures go."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, stem: str | Path) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _plt().close(fig)
    return paths


def score_kde(scores: dict[str, list[float]], stem: str | Path, title: str = "Score distribution per source") -> list[Path]:
    """The paper's comparison-score figure: a Gaussian KDE (Scott's bandwidth) per source on 0-10."""
    import numpy as np
    from scipy.stats import gaussian_kde

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = np.linspace(0, 10.5, 600)
    for name, values in scores.items():
        v = np.asarray(values, dtype=float)
        if len(v) < 2 or np.ptp(v) == 0:  # a KDE needs spread; show a single value as a spike
            ax.axvline(v[0] if len(v) else 0, label=f"{name} (n={len(v)})", linewidth=2)
            continue
        ax.plot(xs, gaussian_kde(v)(xs), label=f"{name} (n={len(v):,}, mean {v.mean():.2f})", linewidth=2)
        ax.fill_between(xs, gaussian_kde(v)(xs), alpha=0.15)
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_xlim(0, 10.5)
    ax.set_title(title)
    ax.legend(frameon=False)
    return save(fig, stem)


def judge_bars(summaries: dict[str, dict], stem: str | Path, reference: str) -> list[Path]:
    """The paper's judge chart: one horizontal bar per model, its score sum as a percentage of the
    reference's, labelled "a : b" (e.g. LLaMA-GPT4 606 : 726.5 = 83%)."""
    plt = _plt()
    names = list(summaries)
    ratios = [summaries[n]["ratio_percent"] for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.2))
    bars = ax.barh(names, ratios, color="#4c72b0")
    for bar, n in zip(bars, names):
        s = summaries[n]
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2,
                f"{s['model_score_sum']:g} : {s['reference_score_sum']:g}  ({s['ratio_percent']:.0f}%)", va="center")
    ax.set_xlabel(f"score relative to {reference} (%)")
    ax.set_xlim(0, max(ratios + [100]) * 1.35)
    ax.invert_yaxis()
    return save(fig, stem)


def leaderboard_chart(rows: list[dict], stem: str | Path, baseline: str) -> list[Path]:
    """Win rates against the baseline, four bars per model: AlpacaEval's length-controlled rate (no
    interval: its lc_standard_error is the spread of its predictions, not a sampling error), the
    shared-slope length-controlled rate and the raw rate, each with its 95% interval (1.96 standard
    errors), and the style-controlled Bradley-Terry win rate with its bootstrap interval; the 50% line
    marked. A null model's name is marked."""
    import numpy as np

    plt = _plt()
    keys = ("win_rate", "length_controlled_winrate", "lc_shared_slope_winrate", "style_bt_win_rate")
    rows = [r for r in rows if r["model"] != baseline and any(r.get(k) is not None for k in keys)]
    if not rows:
        return []
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7.5, 0.75 * len(rows) + 1.4))
    for off, key, se, label, color in ((-0.3, "length_controlled_winrate", None, "length-controlled (AlpacaEval)",
                                        "#4c72b0"),
                                       (-0.1, "lc_shared_slope_winrate", "lc_shared_slope_se",
                                        "length-controlled (shared slope)", "#55a868"),
                                       (0.1, "win_rate", "standard_error", "raw", "#dd8452"),
                                       (0.3, "style_bt_win_rate", "style_bt_win_rate_ci95",
                                        "style-controlled (Bradley-Terry)", "#8172b3")):
        vals = [r.get(key) if r.get(key) is not None else 0.0 for r in rows]
        if se == "style_bt_win_rate_ci95":  # a bootstrap interval: asymmetric, an unbounded end drawn to the edge
            ci = [r.get(se) or [v, v] for r, v in zip(rows, vals)]
            errs = [[max(v - (c[0] if c[0] is not None else 0.0), 0.0) for c, v in zip(ci, vals)],
                    [max((c[1] if c[1] is not None else 100.0) - v, 0.0) for c, v in zip(ci, vals)]]
        else:
            errs = [1.96 * r[se] if se and r.get(se) is not None else 0.0 for r in rows]
        ax.barh(y + off, vals, 0.19, xerr=errs if se else None, label=label, color=color, capsize=2)
    ax.axvline(50, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y, [r["model"] + (" (null model)" if r.get("null_model") else "") for r in rows])
    ax.set_xlabel(f"win rate against {baseline} (%), 95% interval")
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, stem)


def radar(summaries: dict[str, dict], stem: str | Path) -> list[Path]:
    """MT-Bench's radar chart: each model's mean single-answer grade (0-10) per category."""
    import numpy as np

    plt = _plt()
    cats = sorted({c for s in summaries.values() for c, v in s["categories"].items() if v["mean"] is not None})
    if len(cats) < 3:
        return []
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
    for name, s in summaries.items():
        vals = [s["categories"].get(c, {}).get("mean") or 0.0 for c in cats]
        ax.plot(angles + angles[:1], vals + vals[:1], label=f"{name} ({s['score']:.2f})" if s["score"] is not None
                else name)
        ax.fill(angles + angles[:1], vals + vals[:1], alpha=0.1)
    ax.set_xticks(angles, cats)
    ax.set_ylim(0, 10)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=8)
    return save(fig, stem)


def rouge_buckets(table: list[dict], stem: str | Path, reference_model: str, metric: str = "rougeL") -> list[Path]:
    """The paper's ROUGE-L chart: groups by ground-truth length, a bar per model, each labelled
    with its difference to the reference model."""
    import numpy as np

    plt = _plt()
    buckets = list(dict.fromkeys(r["Length"] for r in table))
    models = list(dict.fromkeys(r["Model"] for r in table))
    val = {(r["Model"], r["Length"]): r[metric] for r in table}
    n = {r["Length"]: r["NumInstance"] for r in table if r["Model"] == reference_model}
    x = np.arange(len(buckets))
    w = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(1.6 * len(buckets) + 2, 3.8))
    for i, m in enumerate(models):
        ys = [val.get((m, b)) or 0 for b in buckets]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * w, ys, w, label=m)
        if m != reference_model:
            for bar, b in zip(bars, buckets):
                if val.get((m, b)) is not None and val.get((reference_model, b)) is not None:
                    d = val[(m, b)] - val[(reference_model, b)]
                    ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.005, f"{d:+.3f}",
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [f"{b}\n(N={n.get(b, 0):,})" for b in buckets])
    ax.set_xlabel("ground-truth length (words)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by answer length (differences vs {reference_model})")
    ax.legend(frameon=False, fontsize=8)
    return save(fig, stem)


def hhh_pies(per_criterion: dict, stem: str | Path, model_a: str, model_b: str) -> list[Path]:
    """The paper's human-evaluation figure: a pie per criterion, A wins / B wins / tie."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(per_criterion), figsize=(4 * len(per_criterion), 3.6))
    for ax, (title, c) in zip(axes, per_criterion.items()):
        ax.pie([c["win"], c["lose"], c["tie"]], labels=[f"{model_a} wins", f"{model_b} wins", "tie"],
               autopct="%1.1f%%", colors=["#4c72b0", "#dd8452", "#c8c8c8"], startangle=90, counterclock=False)
        ax.set_title(f"{title} (n={c['n']})")
    return save(fig, stem)


def top_pairs(counts: dict, stem: str | Path, k: int = 25) -> list[Path]:
    """The paper's top-25 verb-noun pairs, datasets side by side (frequencies in % of pairs)."""
    import numpy as np

    plt = _plt()
    first = next(iter(counts.values()))
    labels = [f"{v} {n}" for (v, n), _ in first.most_common(k)]
    keys = [p for p, _ in first.most_common(k)]
    fig, ax = plt.subplots(figsize=(11, 4))
    x = np.arange(len(keys))
    w = 0.8 / len(counts)
    for i, (name, c) in enumerate(counts.items()):
        total = sum(c.values()) or 1
        ax.bar(x + (i - (len(counts) - 1) / 2) * w, [100 * c[p] / total for p in keys], w, label=name)
    ax.set_xticks(x, labels, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("frequency (%)")
    ax.legend(frameon=False)
    return save(fig, stem)


def sunburst(counts, stem: str | Path, verbs: int = 20, nouns: int = 4) -> list[Path]:
    """Top verbs (inner ring) with their top nouns (outer ring): plotly HTML and a static PNG/SVG."""
    from collections import Counter

    by_verb = Counter()
    for (v, _), c in counts.items():
        by_verb[v] += c
    top = [v for v, _ in by_verb.most_common(verbs)]
    ids, labels, parents, values = [], [], [], []
    inner, outer, outer_labels = [], [], []
    for v in top:
        ns = sorted(((n, c) for (vv, n), c in counts.items() if vv == v), key=lambda x: -x[1])[:nouns]
        ids.append(v), labels.append(v), parents.append(""), values.append(sum(c for _, c in ns))
        inner.append(sum(c for _, c in ns))
        for n, c in ns:
            ids.append(f"{v}/{n}"), labels.append(n), parents.append(v), values.append(c)
            outer.append(c), outer_labels.append(n)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_name(stem.name + ".html")
    import plotly.graph_objects as go

    go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total")).write_html(
        html, include_plotlyjs=True, full_html=True)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 7))
    if inner:
        ax.pie(inner, labels=top, radius=0.7, labeldistance=0.55, wedgeprops={"width": 0.4, "edgecolor": "w"},
               textprops={"fontsize": 7})
        ax.pie(outer, labels=outer_labels, radius=1.0, labeldistance=1.03, wedgeprops={"width": 0.3, "edgecolor": "w"},
               textprops={"fontsize": 6})
    ax.set_title(f"top {len(top)} verbs and their top {nouns} nouns")
    return [html, *save(fig, stem)]


def length_histogram(lengths: dict[str, list[int]], stem: str | Path) -> list[Path]:
    """The paper's output-length histogram: words, 0-512, log-scale frequency, datasets overlaid."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ls in lengths.items():
        if ls:
            ax.hist([min(x, 512) for x in ls], bins=64, range=(0, 512), alpha=0.5, label=f"{name} (mean {sum(ls) / len(ls):.0f})")
    ax.set_yscale("log")
    ax.set_xlabel("output length (words)")
    ax.set_ylabel("frequency")
    ax.legend(frameon=False)
    return save(fig, stem)


def dpo_curves(log: list[dict], stem: str | Path) -> list[Path]:
    """DPO's health: the loss and the held-out preference accuracy per step, and the chosen and
    rejected log-probabilities (training batches and held out): both falling is the failure to watch."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.3))
    for key, label, ax, style in (("loss", "train loss", a, "o-"), ("eval_preference_accuracy", "held-out accuracy", a, "s--"),
                                  ("logps/chosen", "chosen (train)", b, "o-"), ("logps/rejected", "rejected (train)", b, "o-"),
                                  ("eval_logps_chosen", "chosen (held out)", b, "s--"),
                                  ("eval_logps_rejected", "rejected (held out)", b, "s--")):
        pts = [(r["step"], r[key]) for r in log if key in r and "step" in r]
        if pts:
            ax.plot(*zip(*pts), style, markersize=3, label=label)
    a.set_xlabel("optimizer step")
    a.set_title("loss and held-out preference accuracy")
    b.set_xlabel("optimizer step")
    b.set_title("sequence log-probabilities")
    for ax in (a, b):
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return save(fig, stem)


def training_curves(histories: dict[str, list[dict]], stem: str | Path) -> list[Path]:
    """Training loss (and eval loss where logged) per optimizer step, one line per run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.3))
    drawn = False
    for name, log in histories.items():
        pts = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r]
        if pts:
            ax.plot(*zip(*pts), marker="o", markersize=3, label=f"{name} train loss")
            drawn = True
        ev = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
        if ev:
            ax.plot(*zip(*ev), marker="s", linestyle="--", label=f"{name} eval loss")
    if not drawn:
        ax.text(0.5, 0.5, "no loss logged (fewer steps than logging_steps)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize=8)
    return save(fig, stem)


def paper_numbers() -> dict:
    """The paper's published numbers (gpt4llm/data/paper_numbers.json, with their source)."""
    import json
    from importlib import resources

    return json.loads(resources.files("gpt4llm.data").joinpath("paper_numbers.json").read_text(encoding="utf-8"))


def _summary(pairs: dict[str, list[float]], reference: str) -> dict[str, dict]:
    return {name: {"model_score_sum": a, "reference_score_sum": b, "ratio_percent": 100 * a / b, "reference": reference}
            for name, (a, b) in pairs.items()}


def paper_figures(out_dir: str | Path) -> dict[str, list[Path]]:
    """Redraw the paper's figures from its published numbers: judge bars (vs GPT-4, vs ChatGPT, the
    ranking groups, Chinese), ROUGE-L by length, and the human-evaluation pies."""
    out, n = Path(out_dir), paper_numbers()
    j, r = n["judge"], n["rouge"]
    figs = {
        "judge_vs_gpt4": judge_bars(_summary(j["vs_gpt4"], "GPT-4"), out / "paper_judge_vs_gpt4", "GPT-4"),
        "judge_vs_chatgpt": judge_bars(_summary(j["vs_chatgpt"], "ChatGPT"), out / "paper_judge_vs_chatgpt", "ChatGPT"),
        "ranking_groups_vs_gpt4": judge_bars(_summary(j["ranking_groups_vs_gpt4"], "GPT-4"),
                                             out / "paper_ranking_groups_vs_gpt4", "GPT-4"),
        "chinese_vs_gpt4": judge_bars(_summary(j["chinese_vs_gpt4"], "GPT-4"), out / "paper_chinese_vs_gpt4", "GPT-4"),
    }
    table = [{"Length": b, "NumInstance": r["n"][i], "Model": m, "rougeL": v[i]}
             for m, v in r["rougeL"].items() for i, b in enumerate(r["buckets"])]
    figs["rouge"] = rouge_buckets(table, out / "paper_rouge_by_length", "GPT-4")
    for pair, crit in n["human"].items():
        if pair == "note":
            continue
        a, b = pair.split(" vs ")
        per = {c: {"win": w, "lose": lo, "tie": t, "n": 252} for c, (w, lo, t) in crit.items()}
        figs[f"human_{b.lower().replace('-', '')}"] = hhh_pies(per, out / f"paper_human_{b.lower().replace('-', '')}", a, b)
    return figs
