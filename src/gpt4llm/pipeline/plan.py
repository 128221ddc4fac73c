"""``gpt4llm run PIPELINE.yaml --dry-run``: the study's plan, request counts, tokens and cost, with no
model call and no training. Inputs that can be read here are counted exactly (and calls already in
the journal are not counted again); a hub dataset or benchmark that cannot be reached offline is
counted by its published size, and says so."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpt4llm.backends import parse_model
from gpt4llm.backends.pricing import BATCH_DISCOUNT, estimate_tokens
from gpt4llm.errors import UserError

if TYPE_CHECKING:
    from gpt4llm.pipeline.study import Study

# Published sizes, used when the source cannot be read here (no hub access); prompt characters are
# the mean length of instruction + input, response tokens an assumed typical answer length.
KNOWN = {
    "hf:tatsu-lab/alpaca": (52002, 110, "Alpaca"),
    "vicuna80": (80, 170, "Vicuna-80"),
    "user-oriented-252": (252, 250, "User-Oriented-252"),
    "unnatural-instructions": (9000, 300, "Unnatural Instructions 9K"),
    "mt-bench": (160, 300, "MT-Bench, 80 questions x 2 turns"),
    "vicuna-bench": (80, 170, "Vicuna-80 (llm_judge)"),
}
ASSUMED_RESPONSE_TOKENS = 250  # a typical GPT-4 answer; only used where answers do not exist yet


@dataclass
class Row:
    stage: str
    model: str
    requests: int
    prompt_tokens: int
    max_completion_tokens: int
    cost: tuple[float, float] | None
    minutes: float | None
    note: str = ""


def _count(study: "Study", source: str, limit: int | None) -> tuple[int, int, str]:
    """(requests per sample: one per question, one per turn for multi-turn questions; mean prompt
    characters; note) of an instruction or question source."""
    from gpt4llm.eval.questions import load_questions
    from gpt4llm.stage import seeds_path

    try:
        path = str(seeds_path()) if source == "seeds" else study.path(source)
        qs = load_questions(path)
        qs = qs[:limit] if limit else qs
        chars = sum(len(q.instruction) + len(q.input) for q in qs) // max(len(qs), 1)
        turns = sum(len(q.turns or [q.instruction]) for q in qs)
        return turns, chars, "" if turns == len(qs) else f"{len(qs)} questions, {turns} turns"
    except UserError:
        if source not in KNOWN:
            raise
        n, chars, note = KNOWN[source]
        n = min(n, limit * (2 if source == "mt-bench" else 1)) if limit else n
        return n, chars, f"{note}*"


def _row(study: "Study", stage: str, model: str, requests: int, prompt_each: int, max_tokens: int, note: str,
         batch: bool = False) -> Row:
    spec = parse_model(model)
    b = study.pipe.backend
    prices = b.prices_for(model)
    prompt, completion = requests * prompt_each, requests * max_tokens
    cost = None
    if prices.known:
        f = BATCH_DISCOUNT if batch else 1.0
        low = prices.cost(prompt, 0) * f
        cost = (low, low + prices.cost(0, completion) * f)
    minutes = None
    if spec.backend == "openai" and not batch:
        bounds = [requests / b.rpm] if b.rpm else []
        bounds += [(prompt + completion) / b.tpm] if b.tpm else []
        minutes = max(bounds) if bounds else None
    if spec.backend == "local":
        engine = "local" if b.engine == "transformers" else \
            f"{b.engine}: {b.replicas} x TP {b.tensor_parallel} = {b.replicas * b.tensor_parallel} GPUs"
        note = (note + "; " if note else "") + engine
    return Row(stage, model, requests, prompt, completion, cost, minutes, note)


def dry_run(study: "Study") -> dict:
    from gpt4llm.compare import rating_prompt
    from gpt4llm.templates import ALPACA

    pipe, s, m = study.pipe, study.pipe.stages, study.pipe.models
    n, chars, note = _count(study, pipe.data.instructions, pipe.data.limit)
    alpaca = estimate_tokens(ALPACA.prompt("", "")) + math.ceil(chars / 4)
    rows: list[Row] = []
    batch = pipe.backend.batch_api
    for lang in pipe.languages:
        if lang != "en":
            rows.append(_row(study, f"translate.{lang}", pipe.translator, 2 * n, 120 + math.ceil(chars / 8),
                             max(64, math.ceil(chars / 2)), "a call per field", batch and pipe.translator.startswith("openai:")))
        rows.append(_row(study, f"generate.{lang}", m.teacher, n, alpaca, s.generate.max_tokens, note, batch))
    if s.compare:
        for src in s.compare.sources:
            if src.model:
                rows.append(_row(study, f"compare: source {src.name}", src.model, n, alpaca, src.max_tokens, note,
                                 batch and src.model.startswith("openai:")))
        rate = estimate_tokens(rating_prompt("", "", "")) + math.ceil(chars / 4) + ASSUMED_RESPONSE_TOKENS
        k = len(s.compare.sources)
        for judge in pipe.judges:  # a panel: every judge scores every response
            rows.append(_row(study, "compare: scoring", judge, n * k, rate, s.compare.max_tokens,
                             f"{k} per instruction; + re-asks", batch and judge.startswith("openai:")))
    train = []
    if s.sft:
        steps = math.ceil(math.ceil(min(n, s.sft.limit or n) * s.sft.epochs) / s.sft.batch_size)
        steps = min(steps, s.sft.max_steps or steps)
        for lang in pipe.languages:
            train.append(f"sft.{lang}: {m.student_base}, {min(n, s.sft.limit or n):,} examples x {s.sft.epochs:g} epochs / "
                         f"batch {s.sft.batch_size} = {steps:,} optimizer steps, lr {s.sft.learning_rate:g}, "
                         f"{s.sft.scheduler}, warmup {s.sft.warmup_ratio:g}, max length {s.sft.max_length}"
                         + (f", DeepSpeed {s.sft.deepspeed}" if s.sft.deepspeed else "")
                         + (f"; launch: {s.sft.launcher}" if s.sft.launcher else ""))
    if s.rm:
        steps = math.ceil(math.ceil(n * (1 - s.rm.eval_split) * s.rm.epochs) / s.rm.batch_size)
        steps = min(steps, s.rm.max_steps or steps)
        train.append(f"rm: {m.reward_base}, up to {n:,} prompts with {len(s.compare.sources)} scored responses "
                     f"each x {s.rm.epochs:g} epochs / batch {s.rm.batch_size} = up to {steps:,} steps")
    if s.dpo:
        k = len(s.compare.sources)
        pairs = {"sigmoid": n, "pairs": n * k * (k - 1) // 2, "plackett-luce": n * k * (k - 1) // 2}[s.dpo.loss]
        prompts = min(n, s.dpo.limit or n)
        steps = math.ceil(math.ceil(prompts * (1 - s.dpo.eval_split) * s.dpo.epochs) / s.dpo.batch_size)
        steps = min(steps, s.dpo.max_steps or steps)
        train.append(f"dpo: student-en -> student-en-dpo, up to {prompts:,} prompts x {k} responses = up to {pairs:,} "
                     f"pairs ({s.dpo.loss} loss, ties excluded), each response encoded once per step; "
                     f"{s.dpo.epochs:g} epochs / batch {s.dpo.batch_size} prompts = up to {steps:,} steps, beta "
                     f"{s.dpo.beta:g}, lr {s.dpo.learning_rate:g}"
                     + ("; no DPO student for " + ", ".join(x for x in pipe.languages if x != "en")
                        + " (the comparisons are English)" if len(pipe.languages) > 1 else ""))
    if s.iterate:
        rows_, train_ = iterate_plan(study, alpaca)
        rows += rows_
        train.append(train_)
    if s.answer:
        b = pipe.data.benchmarks
        for kind, bench in (("judge", b.judge), ("rouge", b.rouge)):
            if not bench:
                continue
            q, qchars, qnote = _count(study, bench.questions, bench.limit)
            qp = estimate_tokens(ALPACA.prompt("", "")) + math.ceil(qchars / 4)
            for lang in pipe.languages:
                samples = s.answer.samples if kind == "judge" else 1
                rows.append(_row(study, f"answer {kind}: student-{lang} x{samples}", "local:(trained student)",
                                 q * samples, qp, s.answer.max_tokens, qnote))
            if s.dpo:
                rows.append(_row(study, f"answer {kind}: student-en-dpo", "local:(trained student)", q, qp,
                                 s.answer.max_tokens, qnote))
            if s.answer.base_model:
                rows.append(_row(study, f"answer {kind}: base", m.student_base, q, qp, s.answer.max_tokens, qnote))
            if kind == "rouge" or (s.judge and s.judge.reference in (None, "teacher")):
                rows.append(_row(study, f"answer {kind}: teacher (reference)", m.teacher, q, qp, s.answer.max_tokens,
                                 qnote))
            if kind == "judge" and s.judge:
                models = (len(pipe.languages) + int(s.answer.base_model) + (s.answer.samples if s.rank else 0)
                          + int(bool(s.dpo)))
                from gpt4llm.eval.judge import decoding as judge_decoding

                max_tokens = judge_decoding(s.judge.mode, s.judge.temperature, s.judge.max_tokens)[1]
                if s.judge.mode == "single":  # each answer graded alone, a second turn with the whole conversation
                    review = 250 + math.ceil(qchars / 4) + ASSUMED_RESPONSE_TOKENS
                    rows.append(_row(study, "judge (single)", pipe.judges[0], q * models, review, max_tokens,
                                     f"{models} models, 1-2 turns each"))
                else:
                    orders = 2 if s.judge.orders == "both" else 1
                    review = 250 + math.ceil(qchars / 4) + 2 * ASSUMED_RESPONSE_TOKENS
                    for judge in pipe.judges:  # a panel: every judge reviews every pair
                        rows.append(_row(study, "judge", judge, q * models * orders, review, max_tokens,
                                         f"{models} models x {orders} order(s)"))
    if batch:
        for r in rows:
            if r.stage.startswith(("generate", "translate", "compare")) and r.model.startswith("openai:"):
                r.note = (r.note + "; " if r.note else "") + "Batch API, half price"
    b = pipe.backend
    engines = []
    if b.engine != "transformers":
        local = sorted({r.model for r in rows if r.model.startswith("local:")})
        engines.append(f"{b.engine} for every local model's answers ({', '.join(local)}): {b.replicas} replica(s) x "
                     f"tensor parallel {b.tensor_parallel} = {b.replicas * b.tensor_parallel} GPUs"
                     + (f" ({b.gpus})" if b.gpus else "") + ", started by each stage that needs it and stopped when it "
                     "ends, so the training stages get the GPUs back")
    total = [r.cost for r in rows if r.cost]
    return {"rows": rows, "training": train, "engines": engines, "records": n, "records_note": note,
            "cost": (sum(c[0] for c in total), sum(c[1] for c in total)) if total else None,
            "unpriced": sorted({r.model for r in rows if r.cost is None and not r.model.startswith("local:")}),
            "output_dir": str(study.out)}


def iterate_plan(study: "Study", prompt_tokens: int) -> tuple[list[Row], str]:
    """The student's answers and the scorer's calls of ``train iterate`` at most (every round run, no early stop)."""
    from gpt4llm.compare import rating_prompt
    from gpt4llm.train.iterate import LEARNING_RATE

    it = study.pipe.stages.iterate
    n, chars, note = _count(study, study.pipe.data.instructions, it.limit)
    held = min(it.heldout, max(n - 1, 0))
    per = min(it.prompts_per_round or n - held, n - held)
    answers = it.rounds * per * it.samples + (it.rounds + 1) * held * it.heldout_samples
    rows = [_row(study, f"iterate: student x{it.samples}", "local:(trained student)", answers, prompt_tokens,
                 it.max_tokens, f"{it.rounds} rounds x {per} prompts x {it.samples} + {it.rounds + 1} x {held} held out")]
    if it.judge and not it.judge.startswith("rule:"):
        rate = estimate_tokens(rating_prompt("", "", "")) + math.ceil(chars / 4) + it.max_tokens
        rows.append(_row(study, "iterate: scoring", it.judge, answers, rate, 1024, "each answer rated 1-10; + re-asks"))
    bench = study.pipe.data.benchmarks.judge
    if bench:  # each round's student against round 0's, both orders (eval judge)
        q, qchars, qnote = _count(study, bench.questions, bench.limit)
        rows.append(_row(study, f"iterate: win rates, {it.rounds + 1} students", "local:(trained student)",
                         (it.rounds + 1) * q, prompt_tokens, it.max_tokens, qnote))
        rows.append(_row(study, "iterate: judge vs round 0", study.pipe.models.judge, 2 * it.rounds * q,
                         250 + math.ceil(qchars / 4) + 2 * it.max_tokens, 1024, f"{it.rounds} rounds x 2 orders"))
    scorer = "the reward model" if study.pipe.stages.rm else it.judge
    how = "best-of-N SFT" if it.method == "rejection" else f"DPO on {it.pairs} pairs"
    train = (f"iterate: student-en -> student-en-iterate, {it.method} ({how}), up to {it.rounds} rounds of {per:,} prompts x {it.samples} samples scored by {scorer}, {it.epochs:g} "
             f"epoch(s) / batch {it.train_batch_size} per round, lr {it.learning_rate or LEARNING_RATE[it.method]:g}; {held} instructions held out for reward, "
             f"length and KL" + (f"; stops when the held-out reward has not improved for {it.patience} round(s)"
                                 if it.patience else ""))
    return rows, train


def plan_table(plan: dict) -> str:
    lines = [f"{'stage':<34} {'model':<32} {'requests':>9} {'tokens in':>12} {'max out':>12} {'cost USD':>21}  note"]
    for r in plan["rows"]:
        cost = f"{r.cost[0]:,.2f} - {r.cost[1]:,.2f}" if r.cost else ("free" if r.model.startswith("local:") else "no price")
        lines.append(f"{r.stage[:34]:<34} {r.model[:32]:<32} {r.requests:>9,} {r.prompt_tokens:>12,} "
                     f"{r.max_completion_tokens:>12,} {cost:>21}  {r.note}"
                     + (f"; ~{max(r.minutes, 1):,.0f} min at rpm/tpm" if r.minutes else ""))
    if any(r.note.startswith(tuple(v[2] for v in KNOWN.values())) and "*" in r.note for r in plan["rows"]):
        lines.append("* not reachable here (no hub access, benchmark not downloaded): counted by its published size")
    for t in plan["training"]:
        lines.append(f"train  {t}")
    for e in plan.get("engines", []):
        lines.append(f"engine {e}")
    if plan["cost"]:
        lo, hi = plan["cost"]
        lines.append(f"estimated cost: ${lo:,.2f} (input only) to ${hi:,.2f} (every answer at max tokens)")
    if plan["unpriced"]:
        lines.append(f"no price known for {', '.join(plan['unpriced'])}: set backend.price_in/price_out")
    lines.append(f"output directory: {plan['output_dir']}; dry run: no model was called, nothing was trained")
    return "\n".join(lines)
