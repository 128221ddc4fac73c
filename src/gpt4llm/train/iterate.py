"""``gpt4llm train iterate``: improve the student with its own samples, scored by a reward model.

Beyond the paper, which trains a reward model on GPT-4's comparisons and stops at best-of-N
decoding. Each round r = 1..R the current student (round r-1's) samples N answers per training
instruction through the backend ``answer`` uses (the local backend batched, or an engine fleet
serving the student), the scorer (``iterate_reward``: the trained reward model, a judge with the
paper's rating prompt, or a rule) scores them, and the student is trained from where it is:

- ``--method rejection`` (best-of-N distillation, RAFT / ReST): ``train sft`` on each prompt's best
  answer (above ``--min-score`` and by more than ``--min-margin`` over the prompt's mean);
- ``--method dpo`` (iterative / online DPO): ``train dpo`` on each prompt's best vs worst answer, or
  on all its pairs apart by at least ``--min-gap``, with the round's starting model as reference.

Against reward hacking, every round (round 0: the starting student) answers held-out instructions
and reports their reward, the answers' length and a KL estimate to round 0 (``iterate_eval``); with
``--patience`` the loop stops when the held-out reward has not beaten its best for that many rounds,
and the final model is the best round's. ``--winrate-questions``: the judge's win rate of each
round's student against round 0's (``eval judge``, both orders).

Files, per round: ``round_r/samples.jsonl`` (the round's N answers per prompt, from the journal),
``scores.jsonl``, ``sft_targets.jsonl`` or ``pairs.jsonl`` (comparison v2), ``checkpoint/`` (the
trainer's output: HF checkpoints, then the final weights), ``heldout.jsonl`` and ``metrics.json``,
written last: the round's completion marker. A run killed at any step continues with the same
command: answers come back from the journal (keyed by the round's weights), scores from their file,
training from its last complete checkpoint; nothing is asked or trained twice.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpt4llm import io
from gpt4llm.backends import BackendSettings
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt
from gpt4llm.train import common

RUN_FILE = "iterate.json"
LEARNING_RATE = {"rejection": 2e-5, "dpo": 1e-6}  # the paper's SFT rate; TRL's DPO default


class IterateSettings(common.TrainSettings):
    """gpt4llm train iterate: improve the student with its own samples scored by a reward model (best-of-N distillation or iterative DPO)."""

    output_dir: Annotated[Path, Opt("-o", pipeline=True)]
    """The run's directory: round_0/, round_1/, ... (samples, scores, data, checkpoint, metrics) and iterate.json."""
    limit: int | None = Field(None, ge=1)
    """Use the first N instructions only (training and held-out)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop each round's training after N optimizer steps (smoke runs)."""
    instructions: Annotated[str, Opt("-i", pipeline=True)]
    """Prompts the student answers: Alpaca records, FastChat questions or a named set (outputs are not read)."""
    method: Literal["rejection", "dpo"] = "dpo"
    """rejection: fine-tune on each prompt's best sample (best-of-N distillation, RAFT/ReST); dpo: DPO on the samples' pairs (iterative DPO)."""
    reward_model: Annotated[Path | None, Opt("-r", pipeline=True)] = None
    """The scorer: a checkpoint from gpt4llm train rm (it reads the Alpaca prompt + answer)."""
    judge: str | None = None
    """The scorer instead of --reward-model: a judge model (local:/openai:, the paper's 1-10 rating prompt, as compare) or rule:regex=PATTERN (reward = number of matches)."""
    score_mode: Literal["text", "logprobs"] = "text"
    """--judge MODEL: text (parse its rating, the paper) or logprobs (a local judge's expected score)."""
    rounds: int = Field(2, ge=1)
    """Rounds of sample, score, train (more rounds continue a finished run)."""
    samples: int = Field(4, ge=2)
    """N: answers sampled per prompt each round (>= 2: a best and a worst are needed)."""
    prompts_per_round: int | None = Field(None, ge=1)
    """Training instructions per round, taken in turn from a seeded shuffle (default: all every round)."""
    heldout: int = Field(16, ge=1)
    """Instructions held out (a seeded draw) for the reward, length and KL of each round."""
    heldout_samples: int = Field(1, ge=1)
    """Answers per held-out instruction each round (more: a steadier held-out reward)."""
    temperature: float = Field(1.0, gt=0, le=2)
    """Sampling temperature (1.0: the student's own distribution, as TRL's online trainers; below 1 each round sharpens it); the KL estimate uses the same."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling (1.0 keeps the KL estimate exact)."""
    max_tokens: int = Field(256, ge=1)
    """Max answer tokens."""
    truncated: Literal["keep", "drop"] = "keep"
    """An answer cut at --max-tokens: keep: trained as it was written, without an end-of-sequence token (as TRL's online trainers do); drop: left out of training (the held-out reward counts it either way)."""
    template: Literal["auto", "alpaca", "chat"] = "auto"
    """auto: the student's saved template (else chat if it has one, else alpaca, as answer does); alpaca or chat."""
    pairs: Literal["best-worst", "all"] = "best-worst"
    """dpo: each prompt's best vs worst sample, or all its pairs (train dpo's pairs loss, each sample encoded once)."""
    min_gap: float = Field(0.0, ge=0)
    """dpo: leave out pairs whose rewards differ by less than this (delta)."""
    min_score: float | None = None
    """rejection: a prompt's best sample is trained on only when its reward reaches this."""
    min_margin: float = Field(0.0, ge=0)
    """rejection: ... and only when it beats the mean reward of the prompt's samples by more than this."""
    epochs: float = Field(1.0, gt=0)
    """Passes over each round's targets or pairs."""
    learning_rate: Annotated[float | None, Field(gt=0), Opt("--lr")] = None
    """Peak learning rate per round (default: 2e-5 for rejection, the paper's SFT rate; 1e-6 for dpo, TRL's)."""
    train_batch_size: int = Field(16, ge=1)
    """Prompts (targets, or pair groups) per optimizer step of a round's training."""
    beta: float = Field(0.1, gt=0)
    """dpo: DPO's beta (how far a round may move from its starting model)."""
    patience: int = Field(1, ge=0)
    """Stop once the held-out reward has not beaten its best round for this many rounds (0: run every round)."""
    winrate_questions: Annotated[str | None, Opt(pipeline=True)] = None
    """Questions on which the judge compares each round's student with round 0's (eval judge, both orders; pipeline: data.benchmarks.judge)."""
    winrate_limit: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """Only the first N win-rate questions."""
    winrate_judge: Annotated[str | None, Opt(pipeline=True)] = None
    """The win-rate judge (default: the embedded model; pipeline: models.judge)."""
    winrate_score_mode: Literal["text", "logprobs"] = "text"
    """The win-rate judge's score mode (eval judge --score-mode; pipeline: stages.judge's unless set here)."""
    resume: Annotated[bool, Opt(cli=False, pipeline=True)] = True
    """Always: a run of the same settings in --output-dir continues where it stopped."""
    journal: Annotated[Path | None, Opt(pipeline=True)] = None
    """Journal of the student's answers and the judge's calls (default <output-dir>/journal.sqlite)."""
    backend: Annotated[BackendSettings, Opt(pipeline=True)] = BackendSettings()
    """How the student (and a judge) is called: --batch-size, or --engine to serve it (the pipeline's backend: section)."""

    FINGERPRINT: ClassVar[tuple[str, ...]] = (
        "instructions", "model", "method", "reward_model", "judge", "score_mode", "samples", "prompts_per_round",
        "heldout", "heldout_samples", "temperature", "top_p", "max_tokens", "truncated", "template", "pairs", "min_gap",
        "min_score", "min_margin", "epochs", "learning_rate", "train_batch_size", "beta", "scheduler", "warmup_ratio",
        "weight_decay", "per_device_batch", "max_length", "precision", "lora", "lora_r", "max_steps", "seed", "limit")

    @property
    def lr(self) -> float:
        return self.learning_rate or LEARNING_RATE[self.method]


@dataclass
class IterateResult:
    output_dir: Path
    method: str
    instructions: int
    heldout: int
    rounds: list[dict] = field(default_factory=list)
    best_round: int | None = None
    final_model: str | None = None
    stopped: str | None = None
    winrates: dict = field(default_factory=dict)
    figure: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    plan: dict = field(default_factory=dict)


def split(cfg: IterateSettings):
    """(training, held-out) instructions: a draw seeded by --seed."""
    from gpt4llm.eval.questions import load_questions

    qs = load_questions(cfg.instructions)
    qs = qs[: cfg.limit] if cfg.limit else qs
    if any(q.turns and len(q.turns) > 1 for q in qs):
        raise UserError(f"--instructions {cfg.instructions}: multi-turn questions; iterate samples one-turn answers")
    if len(qs) <= cfg.heldout:
        raise UserError(f"--instructions {cfg.instructions}: {len(qs)} instructions, not more than --heldout "
                        f"{cfg.heldout}; hold out fewer or give more instructions")
    order = list(range(len(qs)))
    random.Random(cfg.seed).shuffle(order)
    return [qs[i] for i in sorted(order[cfg.heldout:])], [qs[i] for i in sorted(order[: cfg.heldout])]


def round_prompts(train, r: int, per_round: int | None, seed: int):
    """Round r's instructions: all, or the next ``per_round`` of a seeded cycle through them."""
    if per_round is None or per_round >= len(train):
        return train
    order = list(range(len(train)))
    random.Random(seed + 1).shuffle(order)
    start = (r - 1) * per_round
    return [train[order[(start + i) % len(order)]] for i in range(per_round)]


def claim(cfg: IterateSettings) -> None:
    """The output directory: a run of the same settings continues; another is refused without --overwrite."""
    d, meta = cfg.output_dir, cfg.output_dir / RUN_FILE
    if d.exists() and any(d.iterdir()):
        same = meta.is_file() and json.loads(meta.read_text()).get("fingerprint") == cfg.fingerprint()
        if not same and not cfg.overwrite:
            raise UserError(f"{d}: holds another run (other settings or not train iterate); use --overwrite to replace "
                            "it, or another --output-dir")
        if not same:
            shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)


def stop_reason(rewards: list[float], patience: int) -> str | None:
    """Early stop: the held-out reward has not beaten its best for ``patience`` rounds (0: never)."""
    if not patience:
        return None
    best = max(range(len(rewards)), key=lambda i: rewards[i])
    if len(rewards) - 1 - best >= patience:
        return (f"held-out reward {rewards[-1]:.4g} at round {len(rewards) - 1} has not beaten round {best}'s "
                f"{rewards[best]:.4g} for {patience} round(s)")
    return None


def run(cfg: IterateSettings) -> IterateResult:
    from gpt4llm.train.dpo import choose_template
    from gpt4llm.train.iterate_reward import Scorer

    cfg.check()
    journal = cfg.journal or cfg.output_dir / "journal.sqlite"
    scorer = Scorer(cfg.reward_model, cfg.judge, score_mode=cfg.score_mode, backend=cfg.backend, journal=journal,
                    batch_size=cfg.backend.batch_size, max_length=cfg.max_length, quiet=cfg.quiet)
    train_qs, held_qs = split(cfg)
    start = cfg.model.removeprefix("local:")
    template, _ = choose_template(cfg.model, cfg.template)
    result = IterateResult(cfg.output_dir, cfg.method, len(train_qs), len(held_qs))
    per = len(round_prompts(train_qs, 1, cfg.prompts_per_round, cfg.seed))
    result.plan = {"rounds": cfg.rounds, "prompts_per_round": per, "samples_per_round": per * cfg.samples,
                   "heldout_answers_per_round": len(held_qs) * cfg.heldout_samples, "template": template.name,
                   "learning_rate": cfg.lr, "scorer": scorer.name}
    if cfg.dry_run:
        return result
    claim(cfg)
    scorer.load()
    t0 = time.perf_counter()
    state = {"fingerprint": cfg.fingerprint(), "status": "running", "config": common.config_dict(cfg)}
    io.write_json(cfg.output_dir / RUN_FILE, state)
    models = {0: start}
    rewards: list[float] = []
    for r in range(cfg.rounds + 1):
        rdir = cfg.output_dir / f"round_{r}"
        if r > 0:
            models[r] = str((rdir / "checkpoint").resolve())
            if not (rdir / "metrics.json").is_file():
                _train_round(cfg, r, models[r - 1], rdir, scorer, template)
        metrics = _evaluate(cfg, r, models, held_qs, train_qs, scorer, template, journal, rewards)
        result.rounds.append(metrics)
        rewards.append(metrics["reward"])
        state["rounds"] = result.rounds
        io.write_json(cfg.output_dir / RUN_FILE, state)
        if r < cfg.rounds and (why := stop_reason(rewards, cfg.patience)):
            result.stopped = why
            break
    result.best_round = max(range(len(rewards)), key=lambda i: rewards[i])
    result.final_model = models[result.best_round]
    if cfg.winrate_questions:
        from gpt4llm.train.iterate_eval import winrates

        result.winrates = winrates(
            {r: models[r] for r in range(len(result.rounds))}, questions=cfg.winrate_questions,
            limit=cfg.winrate_limit, judge=cfg.winrate_judge or common.DEFAULT_MODEL,
            score_mode=cfg.winrate_score_mode, out=cfg.output_dir / "winrate", journal=journal, backend=cfg.backend,
            params={"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens, "seed": cfg.seed},
            quiet=cfg.quiet)
        for m in result.rounds:
            m["win_rate"] = (result.winrates.get(str(m["round"])) or {}).get("win_rate")
    from gpt4llm.train.iterate_eval import chart

    result.figure = chart(result.rounds, cfg.output_dir / "iterate")
    result.seconds = time.perf_counter() - t0
    state.update(status="done", rounds=result.rounds, best_round=result.best_round, final_model=result.final_model,
                 stopped_early=result.stopped, winrates=result.winrates, figure=[str(p) for p in result.figure])
    io.write_json(cfg.output_dir / RUN_FILE, state)
    return result


def _train_round(cfg: IterateSettings, r: int, start: str, rdir: Path, scorer, template) -> None:
    """Round r: its samples (drawn with round r-1's held-out answers, from the journal), scores, data, training."""
    from gpt4llm.train import iterate_rounds as steps

    samples = io.read_rows(rdir / "samples.jsonl")
    rows = [s.data for s in samples]
    info = json.loads((rdir / "sampling.json").read_text())
    key = f"{scorer.name}:{info['key']}"  # the scores of these samples by this scorer
    done = json.loads((rdir / "scoring.json").read_text()) if (rdir / "scoring.json").is_file() else {}
    if done.get("key") == key:
        rewards, score_s = [x.data["reward"] for x in io.read_rows(rdir / "scores.jsonl")], done["seconds"]
    else:
        t0 = time.perf_counter()
        rewards = scorer.score(rows, f"round {r}: scoring").rewards
        score_s = round(time.perf_counter() - t0, 2)
        io.write_records(rdir / "scores.jsonl", [{"question_id": x["question_id"], "sample": x["sample"], "reward": v}
                                                 for x, v in zip(rows, rewards)])
        io.write_json(rdir / "scoring.json", {"key": key, "seconds": score_s})
    usable = [None if cfg.truncated == "drop" and x["finish_reason"] == "length" else v for x, v in zip(rows, rewards)]
    if cfg.method == "dpo":
        data, st = steps.dpo_pairs(rows, usable, cfg.pairs, cfg.min_gap)
        path, what = rdir / "pairs.jsonl", f"--min-gap {cfg.min_gap:g}"
    else:
        data, st = steps.sft_targets(rows, usable, cfg.min_score, cfg.min_margin)
        path, what = rdir / "sft_targets.jsonl", f"--min-score {cfg.min_score} / --min-margin {cfg.min_margin:g}"
    st["truncated"] = sum(1 for x in rows if x["finish_reason"] == "length")
    st["truncated_left_out"] = sum(1 for a, b in zip(rewards, usable) if a is not None and b is None)
    if not data:
        cut = (f"; {st['truncated_left_out']} of {len(rows)} answers were cut at --max-tokens {cfg.max_tokens} and left "
               "out (raise it, or --truncated keep)" if st["truncated_left_out"] else "")
        raise UserError(f"round {r}: no prompt's samples are apart by {what} (of {st['prompts']} prompts with scored "
                        f"answers){cut}; loosen it, or raise --samples or --temperature for more varied answers")
    io.write_records(path, data)
    trained = steps.train(cfg, r, start, path, template, cfg.lr)
    scored = [x for x in rewards if x is not None]
    io.write_json(rdir / "train.json", {
        "samples": len(rows), "scored": len(scored), "sample_reward": statistics.fmean(scored) if scored else None,
        "data": st, "sample_seconds": info["seconds"], "score_seconds": score_s,
        "samples_scored_per_s": round(len(scored) / (info["seconds"] + score_s), 3)
        if info["seconds"] + score_s > 0 else None, **trained})


def _evaluate(cfg: IterateSettings, r: int, models: dict, held_qs, train_qs, scorer, template, journal: Path,
              rewards: list[float]) -> dict:
    """Round r's model answers the held-out instructions (and, unless this is the last round or the loop
    stops, the next round's prompts, in the same session); reward, length, KL; ``metrics.json``."""
    from gpt4llm.train import iterate_rounds as steps
    from gpt4llm.train.iterate_eval import kl_to_start

    rdir = cfg.output_dir / f"round_{r}"
    marker = rdir / "metrics.json"
    done = json.loads(marker.read_text()) if marker.is_file() else None
    model = models[r]
    nxt = cfg.output_dir / f"round_{r + 1}"
    more = r < cfg.rounds and not (nxt / "sampling.json").is_file()
    if done:
        more = more and stop_reason(rewards + [done["reward"]], cfg.patience) is None
        if not more:
            return done
    student = steps.Student(model, cfg.backend, journal, cfg.quiet, cfg.output_dir)
    seed = (steps.weights_seed(model) + 1_000_003 * cfg.seed) & 0x7FFFFFFF
    engine = cfg.backend.engine != "transformers"
    try:
        if not done:
            reqs = steps.requests(held_qs, template, cfg.heldout_samples, seed ^ 0x5EED, cfg.temperature, cfg.top_p,
                                  cfg.max_tokens, "heldout", engine)
            held = student.answer(reqs, f"round {r}: held-out answers")
            scored = scorer.score(held, f"round {r}: held-out scores")
            for row, x in zip(held, scored.rewards):
                row["reward"] = x
            got = [x for x in scored.rewards if x is not None]
            if not got:
                raise UserError(f"round {r}: the judge read no score of any held-out answer; pick another judge")
            reward = statistics.fmean(got)
            stop = stop_reason(rewards + [reward], cfg.patience)
            more = more and stop is None
        if more:
            t0 = time.perf_counter()
            prompts = round_prompts(train_qs, r + 1, cfg.prompts_per_round, cfg.seed)
            reqs = steps.requests(prompts, template, cfg.samples, seed, cfg.temperature, cfg.top_p, cfg.max_tokens,
                                  "train", engine)
            rows = student.answer(reqs, f"round {r + 1}: {cfg.samples} samples x {len(prompts)} prompts")
            io.write_records(nxt / "samples.jsonl", rows)
            io.write_json(nxt / "sampling.json", {"model": model, "seed": seed, "key": _rows_key(rows),
                                                  "seconds": round(time.perf_counter() - t0, 2)})
    finally:
        student.close()
    if done:
        return done
    io.write_records(rdir / "heldout.jsonl", held)
    kl = ({"kl": 0.0, "kl_k1": 0.0, "kl_per_token": 0.0} if r == 0 else
          kl_to_start(model, models[0], template, held, cfg.temperature, cfg.max_length, cfg.per_device_batch))
    if r == 0:  # no KL to itself; the length is counted as kl_to_start counts it
        kl["length"] = _lengths(model, template, held, cfg.max_length)
    trained = json.loads((rdir / "train.json").read_text()) if (rdir / "train.json").is_file() else {}
    metrics = {"round": r, "model": model, "reward": reward, "reward_se": _se(got), "heldout_answers": len(held),
               "unreadable": scored.unreadable, **kl, **trained}
    from gpt4llm.backends.local import load_model

    load_model.cache_clear()
    io.write_json(marker, metrics)
    return metrics


def _lengths(model: str, template, rows: list[dict], max_length: int) -> float:
    from gpt4llm.backends.local import load_model
    from gpt4llm.templates import IGNORE_INDEX
    from gpt4llm.train.iterate_eval import encode_answers

    tok, _ = load_model(model)
    seqs = encode_answers(tok, template, rows, max_length)
    return sum(sum(1 for t, lab in zip(ids, labels) if lab != IGNORE_INDEX and t != tok.eos_token_id)
               for ids, labels in seqs) / max(len(rows), 1)


def _se(xs: list[float]) -> float | None:
    return statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else None


def _rows_key(rows: list[dict]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([(r["question_id"], r["sample"], r["text"]) for r in rows],
                                     default=str).encode()).hexdigest()[:16]


def summary_text(res: IterateResult) -> str:
    p = res.plan
    head = (f"{res.method}: {res.instructions} training instructions ({p['prompts_per_round']} per round), "
            f"{res.heldout} held out; per round {p['samples_per_round']} samples + {p['heldout_answers_per_round']} "
            f"held-out answers, scored by {p['scorer']}; template {p['template']}, lr {p['learning_rate']:g}")
    if not res.rounds:
        return head + f"; {p['rounds']} rounds\ndry run: nothing sampled or trained"
    lines = [head, f"{'round':>5} {'held-out reward':>16} {'length':>7} {'KL (k3)':>8} {'data':>6} {'steps':>5} "
             f"{'samples/s':>9} {'win rate':>8}"]
    for m in res.rounds:
        d = (m.get("data") or {}).get("kept")
        se = f" ± {m['reward_se']:.3f}" if m.get("reward_se") is not None else ""
        win = "" if m.get("win_rate") is None else f"{m['win_rate']:.1f}%"
        lines.append(f"{m['round']:>5} {m['reward']:>8.4f}{se:>8} {m['length']:>7.1f} {m['kl']:>8.3f} "
                     f"{'' if d is None else d:>6} {m.get('steps') or '':>5} {m.get('samples_scored_per_s') or '':>9} "
                     f"{win:>8}")
    if res.stopped:
        lines.append(f"stopped early: {res.stopped}")
    lines.append(f"best round {res.best_round}: {res.final_model}; {res.method}, {len(res.rounds) - 1} round(s) in "
                 f"{res.seconds:.0f} s; wrote {res.output_dir / RUN_FILE}")
    return "\n".join(lines)
