"""``gpt4llm eval judge``: an LLM judge compares a model's answers with a reference model's on a
question set, with Vicuna's reviewer (PAPER.md section 5), and reports the paper's metric.

``--orders paper``: one order, the evaluated model as Assistant 1 (the paper's protocol).
``--orders both`` (default): also the swapped order; each question's scores are averaged over
the two orders and the flip rate (winner changes with the order) is reported. A verdict whose
first line does not hold two scores is re-asked, then reported as a failure, never dropped.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from gpt4llm import io, plots
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats
from gpt4llm.errors import UserError
from gpt4llm.eval import families, judge_fingerprint
from gpt4llm.eval import null_model as exploit
from gpt4llm.eval.questions import load_answer_file, load_questions
from gpt4llm.eval.verdict import (MAX_PARSE_FAILURE_SHARE, out_of_range, parse_verdict, prompts, review_messages,
                                  reviewers, summarize)
from gpt4llm.schemas import Review
from gpt4llm.settings import USD, Opt
from gpt4llm.stage import AskStats, ModelCallSettings, ask_until_parsed, journal_path, open_backend, write_errors

# The follow-up turn when no rule reads two scores (the judge's review stays in the conversation).
FOLLOWUP = ("Please output only the scores: a single line containing only two values indicating the scores "
            "for Assistant 1 and 2, respectively. The two scores are separated by a space.")


class JudgeSettings(ModelCallSettings):
    """gpt4llm eval judge: an LLM judge compares each model's answers with a reference's (Vicuna's reviewer)."""

    output: Annotated[Path, Opt("-o", pipeline=True)]
    """Reviews (FastChat format) of every model; the summary goes to <output>.summary.json."""
    questions: Annotated[str | None, Opt("-q", pipeline=True)] = None
    """FastChat question.jsonl (categories choose the prompt), or a named benchmark."""
    answers: Annotated[list[str] | None, Opt("-a", pipeline=True)] = None
    """Answers of an evaluated model (repeat for several)."""
    reference: Annotated[str | None, Opt("-r")] = None
    """Answers of the reference model, Assistant 2 (the paper: GPT-4 or ChatGPT); in a pipeline, 'teacher' (the default: the teacher answers the questions) or a FastChat answer file."""
    judge: Annotated[list[str], Opt(pipeline=True)] = [DEFAULT_MODEL]
    """The judge model (the paper: GPT-4; pipeline: models.judge); repeat for a panel: each judge reviews the same pairs, its reviews in <output stem>_<judge>.jsonl, the panel's verdict in --output."""
    panel_verdict: Literal["majority", "mean"] = "majority"
    """A panel's verdict per question and order: majority (the outcome most judges chose, a tie when no outcome has the most; scores: the mean of those judges') or mean (the mean of every judge's scores)."""
    family: list[str] | None = None
    """PATTERN=FAMILY (repeat): a model's family for the self-preference check, before the built-in table (e.g. 'student-*=smollm')."""
    mode: Literal["pairwise", "single"] = "pairwise"
    """pairwise (Vicuna's reviewer against --reference, the paper) or single (each answer rated 1-10 alone, MT-Bench's grader)."""
    references: Annotated[str | None, Opt(pipeline=True)] = None
    """--mode single: reference answers (FastChat format) for math, reasoning and coding; default: the named benchmark's."""
    orders: Literal["both", "paper"] = "both"
    """both (each question in both orders, averaged, with the flip rate) or paper (the evaluated model first only)."""
    max_reasks: int = Field(2, ge=0)
    """Follow-ups in the same conversation when no rule reads the verdict."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Judge temperature (default: Vicuna's reviewer 0.2 pairwise, FastChat's grader 0 single)."""
    max_tokens: int | None = Field(None, ge=1)
    """Judge max tokens (default: 1024 pairwise, as Vicuna's reviewer; 2048 single, as FastChat's grader)."""
    allow_missing: Annotated[bool, Opt(pipeline=True)] = False
    """Judge what is there when an answer file lacks some questions (else stop and list them)."""
    import_reviews: Annotated[str | None, Opt(pipeline=True)] = None
    """Summarize an existing FastChat review file instead of judging."""
    null_model: bool = False
    """Also judge a null model (id null-model) that gives --null-answer to every question: the exploit test (Zheng et al. 2024); above --null-model-threshold the judge setup is unreliable."""
    null_answer: str = Field(exploit.DEFAULT_ANSWER, min_length=1)
    """The null model's answer to every question (default: a constant non-answer)."""
    null_model_threshold: float = Field(exploit.THRESHOLD, ge=0, le=100)
    """Percent: a null model whose win rate (wins + ties / 2) is above it marks every model's verdict unreliable."""
    max_usd: USD = None
    """Budget cap for the judge, follow-ups included (exit 3 when reached)."""
    leaderboard: Annotated[bool, Opt(cli=False)] = False
    """Pipeline: also a leaderboard of every answering model against the reference (raw and length-controlled win rates, Bradley-Terry with CIs; eval leaderboard)."""
    human_db: Annotated[Path | None, Opt(cli=False)] = None
    """Pipeline: an eval human database of the same pairs; the judge's agreement with it is reported (eval agreement)."""
    score_mode: Literal["text", "logprobs"] = "text"
    """text: parse the review (the paper); logprobs: a local judge's expected scores over score tokens."""

    @field_validator("judge", mode="before")
    @classmethod
    def _judges(cls, v: Any) -> Any:
        v = [v] if isinstance(v, str) else v
        if isinstance(v, list):
            if not v:
                raise ValueError("give at least one judge")
            if len(set(v)) != len(v):
                raise ValueError(f"a judge is given twice: {', '.join(sorted({x for x in v if v.count(x) > 1}))}")
        return v

    def params(self) -> GenParams:
        temperature, max_tokens = decoding(self.mode, self.temperature, self.max_tokens)
        return GenParams(temperature=temperature, top_p=1.0, max_tokens=max_tokens)


def decoding(mode: str, temperature: float | None, max_tokens: int | None) -> tuple[float, int]:
    """The judge's temperature and max tokens: as given, else the protocol's (Vicuna's reviewer:
    0.2 and 1024; FastChat's single-answer grader: 0 and 2048)."""
    single = mode == "single"
    return (temperature if temperature is not None else 0.0 if single else 0.2,
            max_tokens if max_tokens is not None else 2048 if single else 1024)


@dataclass
class JudgeSummary:
    output: Path
    summaries: dict[str, dict]
    figure: list[Path]
    calls: CallStats | None
    asked: AskStats | None = None
    panel: dict | None = None
    """A panel's judges, per-judge summaries and files, their agreement (see ``eval.panel``)."""
    self_preference: list[dict] = field(default_factory=list)
    """Judges that share a name or family with a judged model or the reference, with that model's win rates."""

    @property
    def call_failures(self) -> int:
        """Failed calls (a re-run retries them); a panel's: every judge's, not only where all failed."""
        per = (self.panel or {}).get("per_judge")
        summaries = [s for p in per.values() for s in p.values()] if per else self.summaries.values()
        return sum(s["call_failures"] for s in summaries)


def load_answers(path: str, question_ids: set, allow_missing: bool) -> tuple[str, dict[Any, dict]]:
    """(model_id, {question_id: answer with its ``text``}) of a one-turn FastChat answer file."""
    model_id, rows = load_answer_file(path, question_ids, allow_missing)
    for qid, d in rows.items():
        if len(d["turns"]) != 1:
            raise UserError(f"{path}: question {qid} has a {len(d['turns'])}-turn answer; pairwise judging reads one "
                            "turn: grade multi-turn answers with --mode single")
        rows[qid] = {**d, "text": d["turns"][0]}
    return model_id, rows


def reviewer_id(judge_model: str, prompt_id: int) -> str:
    if judge_model.startswith("gpt-4"):
        return reviewers()[prompt_id]["reviewer_id"]  # FastChat's ids, e.g. gpt-4-0328-default
    return f"{judge_model}-{reviewers()[prompt_id]['category']}"


def run_single(cfg: JudgeSettings) -> JudgeSummary:
    """Judge with one judge; a judge that gave no readable pairwise verdict is refused. Several judges
    (a panel) go through ``eval.panel.run``, which sits above this module."""
    s = run_one(cfg)
    if cfg.mode == "pairwise":
        refuse_silent({cfg.judge[0]: s})
    return s


def refuse_silent(runs: dict[str, JudgeSummary], panel: bool = False) -> None:
    """A judge that gave no readable verdict at all (it refuses, or ignores the reviewer's format)
    is an error, not a table of failures: one line naming it, exit 2. Its reviews stay written."""
    for judge, s in runs.items():
        ms = s.summaries.values()
        judged, failed = sum(m["questions"] for m in ms), sum(m["parse_failures"] for m in ms)
        if judged and failed == judged:
            first = next((r.data["text"] for r in io.read_rows(s.output) if r.data.get("text")), "")
            shown = " ".join(first.split())[:80]
            raise UserError(f"judge {judge} gave no readable verdict in any of its {judged} questions (first reply: "
                            f"{shown!r}): it refuses or ignores the reviewer's format; its reviews are in {s.output}; "
                            + ("leave it out of the panel (the other judges' calls are journaled: a re-run without "
                               "it pays nothing)" if panel else "pick another judge"))


def self_preference(cfg: JudgeSettings, per_judge: dict[str, dict[str, dict]]) -> list[dict]:
    """Every judge that shares a name or family with a judged model (or the reference), and that
    model's win rate (wins + ties / 2 over its questions, %) by each judge: a related judge that
    stands apart from the others shows its bias."""
    overrides = families.parse_overrides(cfg.family)
    some = next(iter(per_judge.values()))
    models = list(some)
    reference = next((m.get("reference") for m in some.values() if m.get("reference")), None)
    out = []
    for flag in families.flags(list(per_judge), models, reference, overrides):
        rates = {}
        for judge, summaries in per_judge.items():
            mine = [summaries[flag["model"]]] if flag["role"] == "model" else list(summaries.values())
            w, t, n = (sum(m["wins"] for m in mine), sum(m["ties"] for m in mine),
                       sum(m["wins"] + m["ties"] + m["losses"] for m in mine))
            if flag["role"] == "reference":  # the reference's own win rate, over every model it met
                w = sum(m["losses"] for m in mine)
            rates[judge] = round(100 * (w + t / 2) / n, 2) if n else None
        out.append({**flag, "win_rate_by_judge": rates})
    return out


def run_one(cfg: JudgeSettings, budget=None) -> JudgeSummary:
    judge = cfg.judge[0]
    if cfg.mode == "single":
        if not (cfg.questions and cfg.answers):
            raise UserError("eval judge --mode single needs --questions and --answers")
        from gpt4llm.eval import single

        questions = load_questions(cfg.questions)
        backend = open_backend(judge, "--judge", cfg.backend, quiet=cfg.quiet, output=cfg.output)
        return single.run(cfg, questions, backend)
    if not (cfg.questions and cfg.answers and cfg.reference):
        raise UserError("eval judge needs --questions, --answers and --reference (or --import-reviews)")
    questions = load_questions(cfg.questions)
    qids = {q.question_id for q in questions}
    ref_id, ref = load_answers(cfg.reference, qids, cfg.allow_missing)
    models = [load_answers(p, qids, cfg.allow_missing) for p in cfg.answers]
    if all(model_id == ref_id for model_id, _ in models):
        raise UserError(f"--answers: the only model is the reference itself ({ref_id}, from {cfg.reference}); a judge "
                        "compares two models: give the answers of another model")
    if cfg.null_model:  # the exploit test: one more contender, judged and journaled like the others
        if exploit.NULL_ID in {ref_id, *(m for m, _ in models)}:
            raise UserError(f"--null-model: a model of --answers or --reference is already called {exploit.NULL_ID}")
        models.append((exploit.NULL_ID, exploit.answers(qids, cfg.null_answer)))
    backend = open_backend(judge, "--judge", cfg.backend, quiet=cfg.quiet, output=cfg.output)
    orders = (0, 1) if cfg.orders == "both" else (0,)
    items = []  # (model_id, question, order, answer1, answer2)
    for model_id, answers in models:
        for q in questions:
            if q.question_id in answers and q.question_id in ref:
                a, b = answers[q.question_id], ref[q.question_id]
                for o in orders:
                    items.append((model_id, q, o, a, b) if o == 0 else (model_id, q, o, b, a))
    verdicts: dict[tuple, dict] = {}
    asked = AskStats(None)
    messages = {}
    for it in items:
        question = it[1].instruction + (f"\n\n{it[1].input}" if it[1].input else "")
        messages[(it[0], it[1].question_id, it[2])] = review_messages(it[1].category, question, it[3]["text"], it[4]["text"])
    if cfg.score_mode == "logprobs":
        from gpt4llm.logprob_scores import journaled, masses, verdict_texts

        keys = list(messages)
        # journaled like any call: a re-run (a pipeline that adds a leaderboard or a human DB) reads them back
        with Journal(cfg.journal or journal_path(cfg.output)) as journal:
            texts = dict(zip(keys, journaled(journal, judge, [messages[k][0] for k in keys], "verdict",
                                             lambda chats: verdict_texts(judge, chats, cfg.backend.batch_size)[0])))
        from gpt4llm.backends.local import weights_fingerprint

        weights = weights_fingerprint(backend.model)
        for key in keys:
            text = texts[key]
            mass = round(sum(masses(text)) / 2, 6)
            score, rule = parse_verdict(text)
            verdicts[key] = {"status": "ok" if score else "parse_failed", "score": score, "text": text,
                             "pid": messages[key][1], "attempts": 1, "score_mass": mass,
                             "model_returned": f"local:{backend.model}", "system_fingerprint": weights,
                             **({"rule": "logprobs"} if score else {"reason": rule})}
    else:
        with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
            answers, asked = ask_until_parsed(
                backend, journal, [(k, msgs) for k, (msgs, _) in messages.items()], parse_verdict, FOLLOWUP,
                params=cfg.params(), max_reasks=cfg.max_reasks, label=f"judge ({backend.model})", quiet=cfg.quiet,
                prices=cfg.backend.prices_for(judge), max_usd=cfg.max_usd, budget=budget)
        for key, a in answers.items():
            verdicts[key] = {"status": a.status, "score": a.value, "text": a.text, "pid": messages[key][1],
                             "attempts": a.attempts, "rule": a.rule, "reason": a.reason, "followups": a.followups,
                             "followup_cost_usd": a.followup_cost_usd, "model_returned": a.model_returned,
                             "system_fingerprint": a.system_fingerprint}
    return _write(cfg, questions, items, verdicts, backend, ref_id, asked)


def fingerprint(cfg: JudgeSettings, pid: int, model_returned: str | None, system_fingerprint: str | None) -> dict:
    """The judge of one pairwise verdict, exactly (``eval.judge_fingerprint``)."""
    return judge_fingerprint.make(cfg.judge[0], model_returned, system_fingerprint,
                                  judge_fingerprint.template_sha256(prompts()[pid], FOLLOWUP),
                                  {**cfg.params().as_dict(), "score_mode": cfg.score_mode})


def _write(cfg, questions, items, verdicts, backend, ref_id, asked: AskStats) -> JudgeSummary:
    reviews, errors = [], []
    for model_id, q, o, a1, a2 in items:
        v = verdicts.get((model_id, q.question_id, o), {"status": "not_run", "reason": "not run", "pid": 1, "text": ""})
        rid = hashlib.sha256(f"{model_id}\0{q.question_id}\0{o}\0{backend.model}".encode()).hexdigest()[:22]
        meta = {"model_id": model_id, "reference_id": ref_id, "order": "model_first" if o == 0 else "reference_first",
                "parse_status": v["status"], "parse_rule": v.get("rule"), "reason": v.get("reason") or "",
                "attempts": v.get("attempts"), "judge": f"{backend.kind}:{backend.model}", "category": q.category}
        if v.get("followups"):
            meta["followups"] = v["followups"]
            meta["followup_cost_usd"] = v.get("followup_cost_usd")
        if v.get("score_mass") is not None:
            meta["score_mass"] = v["score_mass"]
        if v.get("score") is not None:
            meta["out_of_range"] = out_of_range(v["score"])
        if model_id == exploit.NULL_ID and cfg.null_model:
            meta.update(exploit.meta(cfg.null_answer))
        if v["status"] in ("ok", "parse_failed"):  # the judge answered: who it was
            meta["judge_fingerprint"] = fingerprint(cfg, v["pid"], v.get("model_returned"), v.get("system_fingerprint"))
        reviews.append(Review(review_id=rid, question_id=q.question_id, answer1_id=a1.get("answer_id"),
                              answer2_id=a2.get("answer_id"), reviewer_id=reviewer_id(backend.model, v["pid"]),
                              text=v["text"], score=v["score"] if v.get("score") is not None else [-1, -1],
                              meta=meta).model_dump())
        if v["status"] in ("call_failed", "not_run"):
            errors.append({"model_id": model_id, "question_id": q.question_id, "order": o, "error": v.get("reason") or v["status"]})
    io.write_records(cfg.output, reviews)
    write_errors(cfg.output, errors)
    summaries = {}
    for model_id in dict.fromkeys(r["meta"]["model_id"] for r in reviews):
        mine = [r for r in reviews if r["meta"]["model_id"] == model_id]
        s = summarize_reviews(mine, questions)
        followed = [r for r in mine if r["meta"].get("followups")]
        s.update({"reference": ref_id, "judge": f"{backend.kind}:{backend.model}", "orders": cfg.orders,
                  "score_mode": cfg.score_mode, "reasks": sum(len(r["meta"]["followups"]) for r in followed),
                  "reasked_reviews": len(followed)})
        costs = [r["meta"].get("followup_cost_usd") for r in followed]
        s["reask_cost_usd"] = None if any(c is None for c in costs) else round(sum(costs), 6)
        s["reliability"] = reliability(s)
        s["judge_fingerprint"] = judge_fingerprint.describe(
            [(r["meta"].get("judge_fingerprint"), r["review_id"]) for r in mine if r["meta"].get("judge_fingerprint")])
        summaries[model_id] = s
    if cfg.null_model:  # the exploit test marks every model's verdict, as one judge setup gave them all
        exploit.mark_judge(summaries, cfg.null_model_threshold)
    totals = {"reasks": asked.reasks, "reasks_rescued": asked.rescued, "reask_cost_usd": asked.reask_cost_usd}
    flags = self_preference(cfg, {cfg.judge[0]: summaries}) if summaries else []
    io.write_json(Path(f"{cfg.output}.summary.json"), {"models": summaries, "self_preference": flags, "calls": totals})
    drawable = {m: s for m, s in summaries.items() if s["ratio_percent"] is not None}
    fig = plots.judge_bars(drawable, Path(f"{cfg.output}.chart"), ref_id) if drawable else []
    return JudgeSummary(Path(cfg.output), summaries, fig, asked.calls, asked, self_preference=flags)


# When the report calls a judge unreliable (see ``reliability``).
MAX_FLIP_RATE = 0.5
MIN_SCORE_TOKEN_MASS = 0.5


def reliability(s: dict) -> dict:
    """Is this judge's verdict worth reading? Unreliable when it changes its winner with the order
    of the answers more often than not (flip rate above 50%), when more than 5% of the questions
    have no readable verdict, or (logprobs mode) when it puts less than half of its next-token
    probability on score tokens, i.e. its "scores" are mostly noise."""
    reasons = []
    if s.get("flip_rate") is not None and s["flip_rate"] > MAX_FLIP_RATE:
        reasons.append(f"flip rate {s['flip_rate']:.0%} > {MAX_FLIP_RATE:.0%}")
    if s.get("questions") and s["parse_failures"] / s["questions"] > MAX_PARSE_FAILURE_SHARE:
        reasons.append(f"parse failures {s['parse_failures'] / s['questions']:.0%} > {MAX_PARSE_FAILURE_SHARE:.0%}")
    mass = s.get("mean_score_token_mass")
    if mass is not None and mass < MIN_SCORE_TOKEN_MASS:
        reasons.append(f"probability on score tokens {mass:.1%} < {MIN_SCORE_TOKEN_MASS:.0%}")
    return {"unreliable": bool(reasons), "reasons": reasons}


def summarize_reviews(reviews: list[dict], questions=None) -> dict:
    """Per-question rows from reviews of one model (any order mix), then ``summarize``.

    A review without a verdict is a call failure when its call failed (or was not sent), else a
    parse failure; a question counts as failed only when none of its orders has a verdict.
    """
    category = {q.question_id: q.category for q in questions or []}
    per_q: dict[Any, list] = {}
    statuses: dict[Any, list] = {}
    for r in reviews:
        s = r.get("score")
        meta = r.get("meta") or {}
        ok = isinstance(s, list) and len(s) == 2 and min(s) >= 0
        order = meta.get("order", "model_first")
        pair = None if not ok else (s[0], s[1]) if order == "model_first" else (s[1], s[0])  # (model, reference)
        per_q.setdefault(r["question_id"], []).append(pair)
        statuses.setdefault(r["question_id"], []).append(meta.get("parse_status", "ok" if ok else "parse_failed"))
    rows = []
    for qid, pairs in per_q.items():
        good = [p for p in pairs if p is not None]
        rows.append({"question_id": qid, "category": category.get(qid) or next(
            (r.get("meta", {}).get("category") for r in reviews if r["question_id"] == qid), None),
            "model": sum(p[0] for p in good) / len(good) if good else None,
            "reference": sum(p[1] for p in good) / len(good) if good else None,
            "orders": good, "call_failed": not good and any(x in ("call_failed", "not_run") for x in statuses[qid])})
    out = summarize(rows)
    out["partially_parsed_questions"] = sum(1 for p in per_q.values() if 0 < sum(x is not None for x in p) < len(p))
    scored = [r for r in reviews if isinstance(r.get("score"), list) and len(r["score"]) == 2 and min(r["score"]) >= 0]
    out["out_of_range"] = sum(1 for r in scored if out_of_range(r["score"]))
    rules = Counter((r.get("meta") or {}).get("parse_rule") or "unknown" for r in scored)
    out["parse_rules"] = dict(sorted(rules.items()))
    masses = [r["meta"]["score_mass"] for r in reviews if (r.get("meta") or {}).get("score_mass") is not None]
    if masses:
        out["mean_score_token_mass"] = round(sum(masses) / len(masses), 6)
    return out


def import_reviews(path: str, questions: str | None = None) -> dict:
    """The summary of an existing FastChat review file (the evaluated model as Assistant 1)."""
    rows = []
    for row in io.read_rows(path):
        d = row.data
        if not (isinstance(d, dict) and "question_id" in d and "score" in d):
            raise UserError(f"{row.where}: not a FastChat review (question_id, score)")
        s = d["score"]
        if not (isinstance(s, list) and len(s) == 2 and all(isinstance(x, (int, float)) for x in s)):
            raise UserError(f"{row.where}: 'score' must be a list of two numbers, got {s!r}")
        rows.append(d)
    return summarize_reviews(rows, load_questions(questions) if questions else None)
