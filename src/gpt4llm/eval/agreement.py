"""``gpt4llm eval agreement``: how often the LLM judge agrees with people, on the pairs both judged.

The judge's reviews hold question and answer ids; the ``eval human`` database holds texts. The
question and answer files join them: a review's question gives the instruction (and input), its
two answer ids give the two responses, and the human item with that instruction and those two
responses, in either order, is the same pair. Each human vote (one annotator, one criterion) is
compared with the judge's verdict on that pair, in the human item's terms (a, b or tie):

- the judge's verdict of one review: the higher score wins, equal scores tie. It is kept as a SIDE
  of the pair (never as the winning text: an answer reading "tie" would pass for a tie, and of two
  identical answers the "winner" would match both), and turned into the human item's a or b by
  text; when the two texts are the same, by the answers' model_id against the item's models (a
  tie needs neither; a preference that cannot be placed leaves the pair out, counted as
  ``pairs_unplaced``);
- of a pair reviewed in both orders: the winner when both orders agree, else a tie (a verdict that
  flips with the order is no preference; FastChat's agreement study does the same). One verdict
  per order (the first read), so a review read twice is not taken for the other order;
- agreement: the share of votes where the judge and the person chose the same, with ties as a
  class of their own, and over the votes where neither chose a tie;
- Cohen's kappa (statsmodels) with and without ties, and the confusion matrix (rows: the judge);
- the judge's position consistency on the same pairs: the share of those reviewed in both
  orders whose two verdicts agree;
- each of the page's criteria (helpfulness, honesty, harmlessness) on its own.

Several judges (a panel's per-judge files, or a replacement judge beside the old one): the reviews
are grouped by the judge that wrote them (``meta.judge``; files without it form one group), and
each judge is measured against the same human labels, then accepted or rejected on the headline
criterion: by ``--accept-agreement`` when given; else against the people's agreement with each
other (two votes of different annotators on one item, the same choice, ties a class of their own:
the MT-Bench paper's yardstick, where GPT-4 agreed with experts 66% and experts with each other
63%) when there are at least ``MIN_HUMAN_PAIRS`` such pairs of votes; else by Cohen's kappa at
least ``--min-kappa`` (0.4, the lower end of "moderate" agreement in Landis and Koch's reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt, Settings

LABELS = ("a", "b", "tie")


class AgreementSettings(Settings):
    """gpt4llm eval agreement: the LLM judge against the eval human page's judgments (agreement, kappa, confusion)."""

    reviews: Annotated[list[str], Opt("-r", pipeline=True)]
    """The judge's reviews (gpt4llm or FastChat format; repeat for several files)."""
    questions: Annotated[str, Opt("-q", pipeline=True)]
    """The questions the reviews are about (a file or a named benchmark)."""
    answers: Annotated[list[str], Opt("-a", pipeline=True)]
    """Answer files of the judged models (repeat): they turn the reviews' answer ids into texts."""
    human_db: Annotated[Path, Opt(pipeline=True)]
    """The eval human database (SQLite)."""
    criterion: Literal["helpfulness", "honesty", "harmlessness"] = "helpfulness"
    """The criterion of the headline figures (all are reported): helpfulness, honesty or harmlessness."""
    output: Annotated[Path | None, Opt("-o", pipeline=True)] = None
    """Where the report goes (JSON; default agreement.json beside the database)."""
    accept_agreement: float | None = Field(None, ge=0, le=1)
    """Accept a judge whose agreement with people (ties a class) reaches this share; default: the people's agreement with each other, else --min-kappa."""
    min_kappa: float = Field(0.4, ge=-1, le=1)
    """Accept a judge whose Cohen's kappa with people reaches this, when neither --accept-agreement nor enough double-annotated items (10 pairs of votes) give a level."""


MIN_HUMAN_PAIRS = 10  # pairs of votes by different people on one item: fewer, and their agreement is noise


@dataclass
class AgreementResult:
    output: Path
    report: dict


def _norm(text: str) -> str:
    return " ".join((text or "").split())


def review_groups(paths: list[str]) -> dict[str, list]:
    """The review rows of each judge ({meta.judge: rows}, in the order the files name them); rows
    without ``meta.judge`` (FastChat's files) are one group named after the first such file."""
    groups: dict[str, list] = {}
    for path in paths:
        for row in io.read_rows(path):
            meta = row.data.get("meta") if isinstance(row.data, dict) else None
            judge = meta.get("judge") if isinstance(meta, dict) and isinstance(meta.get("judge"), str) else None
            groups.setdefault(judge or next((k for k in groups if k.startswith("reviews of ")), f"reviews of {path}"),
                              []).append(row)
    return groups


def judge_verdicts(cfg: AgreementSettings, reviews: list | None = None) -> dict[tuple, dict[tuple, dict]]:
    """{(instruction, text, text) sorted: {the two answer ids sorted: {"texts": (t0, t1), "models": (m0, m1),
    "orders": {shown first (0 or 1): winner (0, 1 or "tie")}}}}, sides 0/1 being the pair sorted by
    (text, answer id): two models' identical texts stay two sides."""
    from gpt4llm.eval.questions import load_questions, turns_of

    questions = {q.question_id: q for q in load_questions(cfg.questions)}
    texts: dict[str, str] = {}
    models: dict[str, Any] = {}
    for path in cfg.answers:
        for row in io.read_rows(path):
            d = row.data
            if not isinstance(d, dict) or "answer_id" not in d:
                raise UserError(f"{row.where}: not a FastChat answer (answer_id, text)")
            t = d.get("text") if isinstance(d.get("text"), str) else (turns_of(d) or [None])[0]
            if not isinstance(t, str):
                raise UserError(f"{row.where}: not a FastChat answer (answer_id with text or choices[0].turns)")
            texts[str(d["answer_id"])] = t
            models[str(d["answer_id"])] = d.get("model_id")
    pairs: dict[tuple, dict] = {}
    for rows in ([reviews] if reviews is not None else [io.read_rows(p) for p in cfg.reviews]):
        for row in rows:
            d = row.data
            if not (isinstance(d, dict) and {"question_id", "answer1_id", "answer2_id", "score"} <= d.keys()):
                raise UserError(f"{row.where}: not a review (question_id, answer1_id, answer2_id, score)")
            s = d["score"]
            if not (isinstance(s, list) and len(s) == 2 and all(isinstance(x, (int, float)) for x in s)):
                raise UserError(f"{row.where}: 'score' must be a list of two numbers, got {s!r}")
            q = questions.get(d["question_id"])
            t1, t2 = texts.get(str(d["answer1_id"])), texts.get(str(d["answer2_id"]))
            if q is None or t1 is None or t2 is None:
                missing = "question" if q is None else "answer"
                raise UserError(f"{row.where}: its {missing} is not in --questions/--answers "
                                f"(question_id {d['question_id']}, answers {d['answer1_id']}, {d['answer2_id']})")
            if min(s) < 0:
                continue  # no verdict
            shown = [(_norm(t1), str(d["answer1_id"])), (_norm(t2), str(d["answer2_id"]))]
            first = int(shown[0] > shown[1])  # the side shown as Assistant 1
            sides = sorted(shown)
            winner = "tie" if s[0] == s[1] else first if s[0] > s[1] else 1 - first
            key = (_norm(q.instruction + (f"\n\n{q.input}" if q.input else "")), sides[0][0], sides[1][0])
            # one pair of answers (other models may have written the same texts: kept apart)
            entry = pairs.setdefault(key, {}).setdefault((sides[0][1], sides[1][1]), {
                "texts": (sides[0][0], sides[1][0]), "models": (models[sides[0][1]], models[sides[1][1]]), "orders": {}})
            entry["orders"].setdefault(first, winner)
    return pairs


def _combined(orders: dict) -> Any:
    return next(iter(orders.values())) if len(set(orders.values())) == 1 else "tie"


def _placed(by_source: dict[tuple, dict], text_a: str, text_b: str, model_a: str, model_b: str) -> tuple[tuple, str | None]:
    """The pair of answers that judges a human item (one by the item's models if any, else the
    first) and its verdict in the item's terms: a, b or tie; None when it cannot be placed."""
    ours = [k for k, v in sorted(by_source.items()) if model_a != model_b and set(v["models"]) == {model_a, model_b}]
    source = ours[0] if ours else min(by_source)
    v = by_source[source]
    won = _combined(v["orders"])
    if won == "tie":
        return source, "tie"
    if text_a != text_b:  # the texts tell the sides apart
        return source, "a" if v["texts"][won] == text_a else "b"
    # the same text twice: only the answers' models can say which side is the item's a
    return source, ("a" if v["models"][won] == model_a else "b") if ours else None


def _stats(pairs_of_labels: list[tuple[str, str]]) -> dict:
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa

    def kappa(table) -> float | None:
        table = np.asarray(table, dtype=float)
        if table.sum() == 0:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            k = cohens_kappa(table, return_results=False)
        return round(float(k), 4) if np.isfinite(k) else None  # undefined when both always chose one label

    table = [[sum(1 for j, h in pairs_of_labels if j == a and h == b) for b in LABELS] for a in LABELS]
    n = len(pairs_of_labels)
    no_ties = [(j, h) for j, h in pairs_of_labels if j != "tie" and h != "tie"]
    table2 = [[sum(1 for j, h in no_ties if j == a and h == b) for b in LABELS[:2]] for a in LABELS[:2]]
    return {"votes": n, "agreement": round(sum(j == h for j, h in pairs_of_labels) / n, 4) if n else None,
            "kappa": kappa(table), "votes_without_ties": len(no_ties),
            "agreement_without_ties": round(sum(j == h for j, h in no_ties) / len(no_ties), 4) if no_ties else None,
            "kappa_without_ties": kappa(table2),
            "confusion": {"rows_judge_cols_human": list(LABELS), "counts": table}}


def human_agreement(rows: list, names: list[str]) -> dict[str, dict]:
    """Per criterion: over every two votes of different people on one item, the share that chose the same."""
    by_item: dict[str, list] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], []).append(r)
    out = {}
    for k in names:
        pairs = [(x[k], y[k]) for votes in by_item.values() for i, x in enumerate(votes) for y in votes[i + 1:]
                 if x["token"] != y["token"] and x[k] in LABELS and y[k] in LABELS]
        out[k] = {"pairs": len(pairs), "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4) if pairs else None}
    return out


def verdict_on_judge(cfg: AgreementSettings, report: dict, people: dict) -> dict:
    """Accept or reject a judge on the headline criterion, with the rule and the numbers."""
    agree, kappa, crit = report["agreement"], report["kappa"], cfg.criterion
    if cfg.accept_agreement is not None:
        level, what = cfg.accept_agreement, "--accept-agreement"
    elif people[crit]["pairs"] >= MIN_HUMAN_PAIRS:
        level, what = people[crit]["agreement"], f"the people's own agreement ({people[crit]['pairs']} pairs of votes)"
    else:
        ok = kappa is not None and kappa >= cfg.min_kappa
        return {"accepted": ok, "rule": f"kappa {'n/a' if kappa is None else f'{kappa:.3f}'} {'>=' if ok else '<'} "
                                        f"--min-kappa {cfg.min_kappa:g} (fewer than {MIN_HUMAN_PAIRS} pairs of votes by "
                                        "two people: no human level)"}
    ok = agree is not None and agree >= level
    shown = "n/a" if agree is None else f"{100 * agree:.1f}%"
    return {"accepted": ok, "rule": f"agreement {shown} {'>=' if ok else '<'} {100 * level:.1f}%, {what}"}


def run(cfg: AgreementSettings) -> AgreementResult:
    from gpt4llm.eval.human import CRITERIA, connect

    names = [k for k, _, _ in CRITERIA]
    if not cfg.human_db.is_file():
        raise UserError(f"--human-db {cfg.human_db}: no such database")
    con = connect(cfg.human_db)
    rows = con.execute("SELECT j.*, i.instruction, i.input, i.model_a, i.text_a, i.model_b, i.text_b FROM judgments j "
                       "JOIN items i USING (item_id) WHERE skipped = 0").fetchall()
    con.close()
    if not rows:
        raise UserError(f"{cfg.human_db}: no human judgments yet")
    people = human_agreement(rows, names)
    judges = {}
    for judge, reviews in review_groups(cfg.reviews).items():
        report = _one_judge(cfg, judge_verdicts(cfg, reviews), rows, names, judge)
        judges[judge] = {**report, **verdict_on_judge(cfg, report, people)}
    first = next(iter(judges.values()))
    report = {**first, "judge": next(iter(judges)), "human_agreement": people,
              "judges": {j: {k: r[k] for k in ("votes", "agreement", "kappa", "agreement_without_ties",
                                                "kappa_without_ties", "pairs_matched", "position_consistency",
                                                "accepted", "rule")} for j, r in judges.items()}}
    out = cfg.output or cfg.human_db.with_name("agreement.json")
    io.write_json(out, report)
    return AgreementResult(Path(out), report)


def _one_judge(cfg: AgreementSettings, verdicts: dict, rows: list, names: list[str], judge: str) -> dict:
    labels: dict[str, list[tuple[str, str]]] = {k: [] for k in names}
    matched_items, matched, models, unplaced = set(), {}, set(), set()
    for r in rows:
        instr = _norm(r["instruction"] + (f"\n\n{r['input']}" if r["input"] else ""))
        ta, tb = _norm(r["text_a"]), _norm(r["text_b"])
        key = (instr, *sorted((ta, tb)))
        if key not in verdicts:
            continue
        source, judge = _placed(verdicts[key], ta, tb, r["model_a"], r["model_b"])
        if judge is None:
            unplaced.add(r["item_id"])
            continue
        matched_items.add(r["item_id"])
        matched[(key, source)] = verdicts[key][source]["orders"]
        models.add((r["model_a"], r["model_b"]))
        for k in names:
            if r[k] in LABELS:
                labels[k].append((judge, r[k]))
    if not matched_items:
        raise UserError(f"no pair of {cfg.human_db} was reviewed by the judge ({judge}): the reviews' questions and answers "
                        "(through --questions and --answers) must hold the same instruction and responses as the "
                        "human page's items")
    both = [o for o in matched.values() if len(o) == 2]  # each side shown first once
    consistency = round(sum(o[0] == o[1] for o in both) / len(both), 4) if both else None
    per = {k: _stats(labels[k]) for k in names}
    return {"criterion": cfg.criterion, **per[cfg.criterion], "per_criterion": per,
            "pairs_matched": len(matched_items), "pairs_unplaced": len(unplaced),
            "human_items": len({r["item_id"] for r in rows}),
            "judge_pairs": len(verdicts), "position_consistency": consistency,
            "pairs_in_both_orders": len(both), "models": sorted(models)}


def agreement_text(r: AgreementResult) -> str:
    rep = r.report

    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    def k(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = [f"judge vs humans on {rep['pairs_matched']} of {rep['human_items']} human-judged pairs "
             f"({rep['votes']} votes on {rep['criterion']}): agreement {pct(rep['agreement'])} (kappa {k(rep['kappa'])}); "
             f"without ties {pct(rep['agreement_without_ties'])} over {rep['votes_without_ties']} votes "
             f"(kappa {k(rep['kappa_without_ties'])})",
             f"  position consistency of the judge: {pct(rep['position_consistency'])} of "
             f"{rep['pairs_in_both_orders']} pairs reviewed in both orders",
             "  confusion (rows: judge a/b/tie; columns: humans a/b/tie): "
             + " | ".join(" ".join(f"{c:>3}" for c in row) for row in rep["confusion"]["counts"])]
    if rep.get("pairs_unplaced"):
        lines.append(f"  {rep['pairs_unplaced']} pairs of two identical answers left out: the judge preferred one, and "
                     "only the answers' model_id (equal to the human items' models) could say which")
    for name, s in rep["per_criterion"].items():
        lines.append(f"  {name}: agreement {pct(s['agreement'])}, kappa {k(s['kappa'])}, without ties "
                     f"{pct(s['agreement_without_ties'])} (kappa {k(s['kappa_without_ties'])}), {s['votes']} votes")
    people = rep["human_agreement"][rep["criterion"]]
    lines.append(f"  people with each other ({rep['criterion']}): {pct(people['agreement'])} over {people['pairs']} pairs "
                 "of votes on the same item")
    if len(rep["judges"]) > 1:
        lines.append(f"  each judge against the same people ({rep['criterion']}):")
    for judge, j in rep["judges"].items():
        lines.append(f"  {'ACCEPTED' if j['accepted'] else 'REJECTED'} {judge}: agreement {pct(j['agreement'])}, "
                     f"kappa {k(j['kappa'])} over {j['votes']} votes on {j['pairs_matched']} pairs; {j['rule']}")
    lines.append(f"wrote {r.output}")
    return "\n".join(lines)
