"""A panel of judges (``eval judge --judge A --judge B --judge C``): several judges review the same
pairs; each judge's reviews, summary and fingerprint stand on their own, beside how often the judges
agree with each other and the panel's verdict.

Each judge runs as ``eval judge`` with that judge alone, its reviews in ``<output stem>_<judge
slug><suffix>``, every call through the one journal (``--journal``, default ``<output>.journal.sqlite``):
a re-run with a judge added pays for that judge only. One ``--max-usd`` caps the whole panel.

The panel's verdict, per model, question and order (the review the judges all gave):

- ``majority``: each judge's outcome (Assistant 1 wins, tie, Assistant 2 wins); the outcome most
  judges chose wins, and when no outcome has the most (1 win, 1 loss) it is a tie. Its scores are
  the mean of the scores of the judges who chose it (so they show the outcome); a tie without a
  plurality gets both positions the mean of every score given;
- ``mean``: the mean of the judges' scores, position by position; the outcome follows from it.

Judges without a verdict on an item are left out of it; an item no judge has a verdict on is a
failure (``[-1, -1]``), as for one judge. The panel's reviews go to ``--output`` in the same format as
one judge's (``meta.panel`` holds each judge's scores), so ``eval leaderboard`` and ``eval agreement``
read them like any judge's.

Agreement between judges: on the outcome of each (model, question, order) both judges gave a
verdict on, from the evaluated model's side (win, tie, loss): the share of equal outcomes and Cohen's
kappa (statsmodels ``cohens_kappa`` on the 3 x 3 table, as ``eval agreement``); over the items every
judge gave a verdict on, Fleiss' kappa (statsmodels ``fleiss_kappa``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from gpt4llm import io
from gpt4llm.calls import CallStats
from gpt4llm.errors import UserError
from gpt4llm.eval import judge as one, null_model as exploit
from gpt4llm.schemas import Review
from gpt4llm.stage import AskStats, errors_path, journal_path, write_errors

OUTCOMES = ("win", "tie", "loss")  # of the evaluated model


def slug(judge: str) -> str:
    """A judge's name as a file name part: ``openai:gpt-4o`` -> ``openai-gpt-4o``."""
    s = re.sub(r"[^A-Za-z0-9.]+", "-", judge).strip("-.")
    return s if len(s) <= 60 else f"{s[:48]}-{hashlib.sha256(judge.encode()).hexdigest()[:8]}"


def judge_output(output: Path, judge: str) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_{slug(judge)}{output.suffix}")


def run(cfg: one.JudgeSettings) -> one.JudgeSummary:
    """``eval judge``: one judge (``eval.judge``), or a panel when several are given. The choice is
    made here, above both, so the single-judge module never imports the panel (no import cycle)."""
    return run_panel(cfg) if len(cfg.judge) > 1 else one.run_single(cfg)


def run_panel(cfg: one.JudgeSettings) -> one.JudgeSummary:
    from gpt4llm.backends.pricing import Budget

    if cfg.mode == "single":
        raise UserError("--mode single takes one --judge (a panel compares pairwise verdicts); run one judge at a time")
    slugs = [slug(j) for j in cfg.judge]
    if len(set(slugs)) != len(slugs):
        raise UserError(f"--judge: two judges make the same file name ({', '.join(cfg.judge)}); name them apart")
    journal = cfg.journal or journal_path(cfg.output)
    budget = Budget(cfg.max_usd) if cfg.max_usd is not None else None
    runs: dict[str, one.JudgeSummary] = {}
    for j in cfg.judge:  # one at a time: a local judge's memory is freed before the next loads
        sub = cfg.model_copy(update={"judge": [j], "output": judge_output(cfg.output, j), "journal": journal})
        runs[j] = one.run_one(sub, budget=budget)
        if runs[j].calls is not None and runs[j].calls.budget_reached:
            break  # the cap is reached: the judges after this one are not asked (exit 3, resumable)
    calls = _merge_calls(runs)
    merge_errors(cfg.output, {j: s.output for j, s in runs.items()})
    if len(runs) < len(cfg.judge):  # stopped by the budget: no panel verdict from part of the panel
        first = next(iter(runs.values()))
        return one.JudgeSummary(Path(cfg.output), first.summaries, [], calls, None,
                                panel={"judges": cfg.judge, "incomplete": True})
    one.refuse_silent(runs, panel=True)
    reviews = {j: [r.data for r in io.read_rows(s.output)] for j, s in runs.items()}
    combined = combine(reviews, cfg.panel_verdict)
    io.write_records(cfg.output, combined)
    from gpt4llm.eval.questions import load_questions

    questions = load_questions(cfg.questions)
    summaries = {}
    for model_id in dict.fromkeys(r["meta"]["model_id"] for r in combined):
        mine = [r for r in combined if r["meta"]["model_id"] == model_id]
        s = one.summarize_reviews(mine, questions)
        s.update({"reference": mine[0]["meta"]["reference_id"], "judge": combined[0]["meta"]["judge"],
                  "orders": cfg.orders, "score_mode": cfg.score_mode, "panel_verdict": cfg.panel_verdict})
        s["reliability"] = one.reliability(s)
        summaries[model_id] = s
    if cfg.null_model:  # the exploit test on the panel's verdict, as on each judge's (run_one marked those)
        exploit.mark_judge(summaries, cfg.null_model_threshold)
    per_judge = {j: s.summaries for j, s in runs.items()}
    panel = {"judges": cfg.judge, "verdict": cfg.panel_verdict,
             "files": {j: str(s.output) for j, s in runs.items()}, "per_judge": per_judge,
             "agreement": agreement(reviews),
             "fingerprints": {j: next(iter(s.summaries.values())).get("judge_fingerprint") for j, s in runs.items()}}
    flags = one.self_preference(cfg, {**per_judge, f"panel ({cfg.panel_verdict})": summaries})
    flags = [f for f in flags if not f["judge"].startswith("panel (")]
    asked = AskStats(calls, sum(s.asked.reasks for s in runs.values() if s.asked),
                     None if any(s.asked and s.asked.reask_cost_usd is None for s in runs.values())
                     else sum(s.asked.reask_cost_usd or 0 for s in runs.values() if s.asked),
                     sum(s.asked.rescued for s in runs.values() if s.asked))
    io.write_json(Path(f"{cfg.output}.summary.json"), {"models": summaries, "panel": panel, "self_preference": flags,
                                                       "calls": {"reasks": asked.reasks, "reasks_rescued": asked.rescued,
                                                                 "reask_cost_usd": asked.reask_cost_usd}})
    from gpt4llm import plots

    drawable = {m: s for m, s in summaries.items() if s["ratio_percent"] is not None}
    ref_id = combined[0]["meta"]["reference_id"] if combined else ""
    fig = plots.judge_bars(drawable, Path(f"{cfg.output}.chart"), ref_id) if drawable else []
    return one.JudgeSummary(Path(cfg.output), summaries, fig, calls, asked, panel=panel, self_preference=flags)


def merge_errors(output: Path, outputs: dict[str, Path]) -> None:
    """``<output>.errors.jsonl``: every judge's failed calls, each row naming its judge (or no file)."""
    rows = []
    for judge, out in outputs.items():
        if errors_path(out).is_file():
            rows += [{"judge": judge, **r.data} for r in io.read_rows(errors_path(out))]
    write_errors(output, rows)


def _merge_calls(runs: dict[str, one.JudgeSummary]) -> CallStats | None:
    out = None
    for s in runs.values():
        out = s.calls if out is None else out.merge(s.calls)
    return out


# ---------------------------------------------------------------- the panel's verdict


def _ok(score: Any) -> bool:
    return isinstance(score, list) and len(score) == 2 and min(score) >= 0


def _outcome(score: list[float]) -> int:
    """1: Assistant 1 wins, 0: tie, -1: Assistant 2 wins."""
    return (score[0] > score[1]) - (score[0] < score[1])


def verdict(scores: list[list[float]], how: str) -> list[float] | None:
    """The panel's two scores from its judges' (those with a verdict), or None when there are none."""
    scores = [s for s in scores if _ok(s)]
    if not scores:
        return None

    def mean(rows):
        return [round(sum(r[0] for r in rows) / len(rows), 4), round(sum(r[1] for r in rows) / len(rows), 4)]

    if how == "mean":
        return mean(scores)
    votes: dict[int, list] = {}
    for s in scores:
        votes.setdefault(_outcome(s), []).append(s)
    ranked = sorted(votes.values(), key=len, reverse=True)
    if len(ranked) == 1 or len(ranked[0]) > len(ranked[1]):
        return mean(ranked[0])
    m = round(sum(x for s in scores for x in s) / (2 * len(scores)), 4)
    return [m, m]  # no plurality: a tie


def _key(r: dict) -> tuple:
    m = r["meta"]
    return m["model_id"], str(r["question_id"]), m.get("order", "model_first")


def combine(reviews: dict[str, list[dict]], how: str) -> list[dict]:
    """The panel's reviews: one per (model, question, order) of the first judge's file, in its order."""
    by_judge = {j: {_key(r): r for r in rows} for j, rows in reviews.items()}
    judges = list(reviews)
    label = f"panel:{how}({', '.join(judges)})"
    out = []
    for r in reviews[judges[0]]:
        k = _key(r)
        mine = {j: by_judge[j].get(k) for j in judges}
        scores = {j: (x["score"] if x is not None and _ok(x["score"]) else None) for j, x in mine.items()}
        v = verdict([s for s in scores.values() if s is not None], how)
        statuses = [(x or {}).get("meta", {}).get("parse_status", "not_run") for x in mine.values()]
        status = "ok" if v is not None else "call_failed" if all(s in ("call_failed", "not_run") for s in statuses) \
            else "parse_failed"
        meta = {**{f: r["meta"][f] for f in ("model_id", "reference_id", "order", "category", "null_model", "null_answer")
                   if f in r["meta"]},
                "parse_status": status, "judge": label,
                "panel": {"verdict": how, "scores": scores},
                "judge_fingerprint": combined_fingerprint([(x or {}).get("meta", {}).get("judge_fingerprint") for x in mine.values()],
                                                  how)}
        text = "; ".join(f"{j}: {' '.join(f'{x:g}' for x in s) if s else 'no verdict'}" for j, s in scores.items())
        out.append(Review(review_id=hashlib.sha256(f"{'|'.join(map(str, k))}\0{label}".encode()).hexdigest()[:22],
                          question_id=r["question_id"], answer1_id=r.get("answer1_id"), answer2_id=r.get("answer2_id"),
                          reviewer_id=f"panel-{how}", text=f"panel ({how}) of {len(judges)} judges: {text}",
                          score=v if v is not None else [-1, -1], meta=meta).model_dump())
    return out


def combined_fingerprint(members: list[dict | None], how: str) -> dict | None:
    """The panel's fingerprint: each field, its judges' values in panel order ("?" unknown)."""
    if all(m is None for m in members):
        return None
    out: dict[str, Any] = {}
    for f in ("judge", "model_returned", "system_fingerprint", "prompt_template_sha256"):
        values = [str((m or {}).get(f) or "?") for m in members]
        out[f] = values[0] if len(set(values)) == 1 and f != "judge" else " + ".join(values)
    params = [(m or {}).get("params") for m in members]
    out["params"] = ({**params[0], "panel_verdict": how} if all(p == params[0] for p in params) and params[0]
                     else {"panel_verdict": how, "judges": params})
    return out


# ---------------------------------------------------------------- agreement between judges


def outcomes(rows: list[dict]) -> dict[tuple, str]:
    """{(model, question, order): win | tie | loss of the evaluated model} of one judge's reviews."""
    out = {}
    for r in rows:
        if _ok(r.get("score")):
            o = _outcome(r["score"]) * (1 if r["meta"].get("order", "model_first") == "model_first" else -1)
            out[_key(r)] = {1: "win", 0: "tie", -1: "loss"}[o]
    return out


def cohen_kappa(table) -> float | None:
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa

    table = np.asarray(table, dtype=float)
    if table.sum() == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cohens_kappa(table, return_results=False)
    return round(float(k), 4) if np.isfinite(k) else None  # undefined when both always chose one outcome


def agreement(reviews: dict[str, list[dict]]) -> dict:
    """Pairwise % agreement and Cohen's kappa of the judges' outcomes, and Fleiss' kappa of all."""
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa

    labels = {j: outcomes(rows) for j, rows in reviews.items()}
    judges = list(labels)
    pairs = []
    for i, a in enumerate(judges):
        for b in judges[i + 1:]:
            common = sorted(labels[a].keys() & labels[b].keys())
            table = [[sum(1 for k in common if labels[a][k] == x and labels[b][k] == y) for y in OUTCOMES]
                     for x in OUTCOMES]
            pairs.append({"judges": [a, b], "items": len(common),
                          "agreement": round(sum(labels[a][k] == labels[b][k] for k in common) / len(common), 4)
                          if common else None, "kappa": cohen_kappa(table),
                          "table": {"rows": a, "cols": b, "labels": list(OUTCOMES), "counts": table}})
    every = sorted(set.intersection(*(set(x) for x in labels.values()))) if labels else []
    fleiss = None
    if every:
        counts = np.array([[sum(labels[j][k] == o for j in judges) for o in OUTCOMES] for k in every])
        with np.errstate(divide="ignore", invalid="ignore"):
            f = fleiss_kappa(counts, method="fleiss")
        fleiss = round(float(f), 4) if np.isfinite(f) else None
    return {"labels": list(OUTCOMES), "pairs": pairs, "items_all_judges": len(every), "fleiss_kappa": fleiss}
