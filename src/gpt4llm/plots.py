"""Figures in the paper's style (matplotlib, Agg: no display needed). Each saves PNG and SVG."""

from __future__ import annotations

from pathlib import Path


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
