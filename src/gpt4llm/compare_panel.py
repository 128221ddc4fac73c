"""``compare`` with a panel of judges (``--judge A --judge B``): each judge scores every response on
its own, as ``compare`` with that judge alone (``<output stem>_<judge slug><suffix>`` and its report),
every call through the one journal, so a judge added later is paid for alone; one ``--max-usd``
caps the panel. The output holds, per response, the mean of the scores of the judges that scored it
(a response no judge scored is left out, a prompt with fewer than 2 scored responses skipped, as for
one judge), with each judge's score in ``meta.panel_scores``: the data the reward model and DPO
train on is the panel's.

How far the judges agree: on the scores of the responses both scored, Spearman's rank correlation
(scipy) and the mean absolute difference; on the order each gives every two responses of a prompt
(first better, tie, second better: what the reward model and DPO learn from), the share of equal
orders and Cohen's kappa, as between ``eval judge``'s panel judges.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from gpt4llm import io, plots
from gpt4llm.compare import CompareSettings, CompareSummary, check_inputs, run as run_one, self_preference
from gpt4llm.eval.panel import cohen_kappa, combined_fingerprint, judge_output, merge_errors
from gpt4llm.schemas import Comparison
from gpt4llm.stage import journal_path
from gpt4llm.stats import score_report

ORDERS = ("first", "tie", "second")


def run(cfg: CompareSettings) -> CompareSummary:
    """``compare``: one judge (``compare.run``), or a panel when several are given. The choice is
    made here, above both, so ``compare`` never imports its panel (no import cycle)."""
    check_inputs(cfg)
    return run_panel(cfg) if len(cfg.judge) > 1 else run_one(cfg)


def run_panel(cfg: CompareSettings) -> CompareSummary:
    from gpt4llm.backends.pricing import Budget

    journal = cfg.journal or journal_path(cfg.output)
    budget = Budget(cfg.max_usd) if cfg.max_usd is not None else None
    runs: dict[str, CompareSummary] = {}
    for j in cfg.judge:
        sub = cfg.model_copy(update={"judge": [j], "output": judge_output(cfg.output, j), "journal": journal})
        runs[j] = run_one(sub, budget)
        if runs[j].calls is not None and runs[j].calls.budget_reached:
            break  # exit 3 (resumable): no panel from part of the panel
    calls = None
    for r in runs.values():
        calls = r.calls if calls is None else calls.merge(r.calls)
    failures = sum(r.call_failures for r in runs.values())
    merge_errors(cfg.output, {j: r.output for j, r in runs.items()})
    if len(runs) < len(cfg.judge):
        first = next(iter(runs.values()))
        return CompareSummary(Path(cfg.output), 0, first.report, [], failures, calls, {"judges": cfg.judge, "incomplete": True})
    records = {j: [r.data for r in io.read_rows(s.output)] for j, s in runs.items()}
    out = combine(records)
    io.write_records(cfg.output, out)
    per_source: dict[str, list[float]] = {}
    for rec in out:
        for x in rec["responses_and_scores"]:
            per_source.setdefault(x["source"], []).append(x["score"])
    report = score_report(per_source)
    reps = [r.report for r in runs.values()]
    report.update({"prompts": reps[0]["prompts"], "prompts_written": len(out),
                   "prompts_skipped_fewer_than_2_scored": reps[0]["prompts"] - len(out),
                   "identical_responses_removed": reps[0]["identical_responses_removed"],
                   "ties": sum(1 for rec in out for i, a in enumerate(rec["responses_and_scores"])
                               for b in rec["responses_and_scores"][i + 1:] if a["score"] == b["score"]),
                   "parse_failures": sum(x["parse_failures"] for x in reps), "call_failures": failures,
                   "score_mode": cfg.score_mode})
    masses = [x["mean_score_token_mass"] for x in reps if "mean_score_token_mass" in x]
    if masses:
        report["mean_score_token_mass"] = round(statistics.fmean(masses), 6)
    by_judge = {j: _per_source(rows) for j, rows in records.items()}
    report["panel"] = {"judges": cfg.judge, "verdict": "mean", "files": {j: str(s.output) for j, s in runs.items()},
                       "per_judge": {j: s.report for j, s in runs.items()}, "agreement": agreement(records)}
    report["self_preference"] = self_preference(cfg, {**by_judge, "panel (mean)": per_source})
    io.write_json(Path(f"{cfg.output}.report.json"), report)
    fig = plots.score_kde(per_source, Path(f"{cfg.output}.scores")) if per_source else []
    return CompareSummary(Path(cfg.output), len(out), report, fig, failures, calls, report["panel"])


def _per_source(rows: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for rec in rows:
        for x in rec["responses_and_scores"]:
            out.setdefault(x["source"], []).append(x["score"])
    return out


def _scores(records: dict[str, list[dict]]) -> dict[str, dict[tuple, float]]:
    """{judge: {(record id, source): score}}."""
    return {j: {(rec["id"], x["source"]): x["score"] for rec in rows for x in rec["responses_and_scores"]}
            for j, rows in records.items()}


def combine(records: dict[str, list[dict]]) -> list[dict]:
    """The panel's records: each response's mean score over the judges that scored it, in the order
    the judges' files first name each prompt."""
    scores = _scores(records)
    judges = list(records)
    by_id = {j: {rec["id"]: rec for rec in rows} for j, rows in records.items()}
    first: dict[str, dict] = {}
    for rows in records.values():
        for rec in rows:
            first.setdefault(rec["id"], rec)
    out = []
    for rid, rec in first.items():
        texts: dict[str, str] = {}
        for j in judges:
            for x in (by_id[j].get(rid) or {}).get("responses_and_scores", []):
                texts.setdefault(x["source"], x["response"])
        panel: dict[str, dict[str, Any]] = {s: {j: scores[j].get((rid, s)) for j in judges} for s in texts}
        scored = [{"response": texts[s], "score": round(statistics.fmean(v for v in by.values() if v is not None), 4),
                   "source": s} for s, by in panel.items() if any(v is not None for v in by.values())]
        if len(scored) < 2:
            continue
        fps = [(by_id[j].get(rid) or {}).get("meta", {}).get("judge_fingerprint") for j in judges]
        out.append(Comparison(user_input=rec["user_input"], responses_and_scores=scored, id=rid, meta={
            "judge": f"panel:mean({', '.join(judges)})", "question_id": rec["meta"].get("question_id"),
            "panel_scores": panel, "judge_fingerprint": combined_fingerprint(fps, "mean"),
            "identical_removed": rec["meta"].get("identical_removed", 0)}).model_dump())
    return out


def agreement(records: dict[str, list[dict]]) -> dict:
    """Per pair of judges: Spearman's rho and mean absolute difference of their scores; share of equal
    orders of two responses of one prompt and Cohen's kappa of those orders."""
    from scipy.stats import spearmanr

    scores = _scores(records)
    judges = list(records)
    pairs = []
    for i, a in enumerate(judges):
        for b in judges[i + 1:]:
            common = sorted(scores[a].keys() & scores[b].keys())
            xa, xb = [scores[a][k] for k in common], [scores[b][k] for k in common]
            rho = spearmanr(xa, xb).statistic if len(common) > 2 and len(set(xa)) > 1 and len(set(xb)) > 1 else None
            oa, ob = _orders(scores[a]), _orders(scores[b])
            both = sorted(oa.keys() & ob.keys())
            table = [[sum(1 for k in both if oa[k] == x and ob[k] == y) for y in ORDERS] for x in ORDERS]
            pairs.append({"judges": [a, b], "responses": len(common),
                          "spearman": None if rho is None else round(float(rho), 4),
                          "mean_abs_diff": round(statistics.fmean(abs(p - q) for p, q in zip(xa, xb)), 4) if common else None,
                          "response_pairs": len(both),
                          "order_agreement": round(sum(oa[k] == ob[k] for k in both) / len(both), 4) if both else None,
                          "order_kappa": cohen_kappa(table)})
    return {"pairs": pairs}


def _orders(scores: dict[tuple, float]) -> dict[tuple, str]:
    """{(record id, source, source): first | tie | second} of every two responses one judge scored."""
    by_rec: dict[str, list[tuple[str, float]]] = {}
    for (rid, src), v in scores.items():
        by_rec.setdefault(rid, []).append((src, v))
    out = {}
    for rid, xs in by_rec.items():
        xs.sort()
        for i, (s1, v1) in enumerate(xs):
            for s2, v2 in xs[i + 1:]:
                out[(rid, s1, s2)] = "first" if v1 > v2 else "second" if v1 < v2 else "tie"
    return out
