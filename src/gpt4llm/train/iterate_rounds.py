"""The steps of one ``train iterate`` round: the sampling requests (seeded by the weights, so a
round's samples are keyed by its model), the student served once for all it must answer, the
training data (best-of-N SFT targets, or DPO pairs), and the round's training through ``train sft``
or ``train dpo`` themselves (their checkpoints, resume and saved template)."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

from gpt4llm.backends.base import GenParams, Request
from gpt4llm.errors import PartialFailure, UserError
from gpt4llm.schemas import Question
from gpt4llm.templates import ALPACA, PromptTemplate
from gpt4llm.train import common

# TrainSettings fields a round's trainer takes from the iterate settings as they are.
NOT_SHARED = {"output_dir", "model", "resume", "overwrite", "limit", "dry_run", "seed"}
SHARED = [n for n in common.TrainSettings.model_fields if n not in NOT_SHARED]


def weights_seed(model: str) -> int:
    """A 31-bit seed from a local model's weight files (the embedded model: its GGUF file; a hub id:
    its name). Sampling seeds come from it, so a round's requests (whose journal key holds the seed)
    are those of its exact weights: a shared journal never hands a retrained round the old round's
    samples, and two runs that trained the same weights draw the same samples."""
    from gpt4llm.backends import EMBEDDED
    from gpt4llm.backends.local import _file_digest, resolve, weights_fingerprint

    name = model.removeprefix("local:")
    h = hashlib.sha256()
    path = Path(resolve(name)[0]) if name != EMBEDDED else None
    if name == EMBEDDED:
        h.update((weights_fingerprint(EMBEDDED) or name).encode())
    elif path.is_dir():  # the weights only: gpt4llm_train.json (timings) must not change the seed
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
        for f in files:
            _file_digest(h, f)
        if not files:
            h.update(name.encode())
    elif path.is_file():
        _file_digest(h, path)
    else:
        h.update(name.encode())
    return int(h.hexdigest()[:8], 16) & 0x7FFFFFFF


def requests(questions: list[Question], template: PromptTemplate, samples: int, seed: int, temperature: float,
             top_p: float, max_tokens: int, what: str, per_sample_seed: bool) -> list[Request]:
    """``samples`` answers per question (the sample index is part of each request's journal key).
    ``per_sample_seed``: sample k has the seed ``seed + k``, for an engine, which seeds each request
    (vLLM: one seed for all would give N equal answers); else all have ``seed``: the local backend
    batches only requests of equal parameters, and draws one random stream per batch, so the N
    answers of a prompt sit in one batch (one prompt length, no padding) and still differ."""
    from gpt4llm.eval.answer import build_requests

    out = []
    for k in range(samples):
        params = GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                           seed=(seed + k * per_sample_seed) & 0x7FFFFFFF)
        for req in build_requests(questions, template, 1, params):
            req.sample, req.tag = k, (what, req.tag[0], k)
            out.append(req)
    return out


class Student:
    """One model's backend for everything it answers in a round (held-out answers, then the next
    round's samples), so an engine fleet starts once per model; closed before training."""

    def __init__(self, model: str, backend_settings, journal: Path, quiet: bool, log_dir: Path):
        self.model, self.settings, self.journal, self.quiet, self.log_dir = model, backend_settings, journal, quiet, log_dir
        self.backend = None
        self.seconds = 0.0

    def answer(self, reqs: list[Request], label: str) -> list[dict]:
        """The rows (question_id, instruction, input, sample, text, finish_reason, completion_tokens) of ``reqs``,
        from the journal where it has them."""
        from gpt4llm.backends.journal import Journal
        from gpt4llm.calls import run_calls
        from gpt4llm.stage import open_backend

        if self.backend is None:
            self.backend = open_backend(f"local:{self.model}", "--model", self.settings, quiet=self.quiet,
                                        output=self.log_dir / "x")
        with Journal(self.journal) as j:
            stats = run_calls(self.backend, j, reqs, label=label, quiet=self.quiet)
        self.seconds += stats.seconds
        rows, failed = [], 0
        for req in reqs:
            e = stats.entries.get(req.key)
            if e is None or not e.ok:
                failed += 1
                continue
            _, q, k = req.tag
            rows.append({"question_id": q.question_id, "instruction": q.instruction, "input": q.input, "sample": k,
                         "text": e.text, "finish_reason": e.finish_reason, "completion_tokens": e.completion_tokens})
        if failed:
            raise PartialFailure(f"{label}: {failed} of {len(reqs)} answers failed (the others are journaled); run the "
                                 "same command again to retry them")
        return rows

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        from gpt4llm.backends.local import load_model

        load_model.cache_clear()  # free the student before training (a 135M model is 0.5 GB in fp32)


# ---------------------------------------------------------------- the round's training data


def by_prompt(rows: list[dict], rewards: list[float | None]) -> dict[Any, list[tuple[float, dict]]]:
    out: dict[Any, list] = {}
    for row, r in zip(rows, rewards):
        if r is not None:
            out.setdefault(row["question_id"], []).append((r, row))
    return out


def sft_targets(rows, rewards, min_score: float | None, min_margin: float) -> tuple[list[dict], dict]:
    """Per prompt, its best sample as an Alpaca record, when it beats the prompt's mean reward by more
    than ``min_margin`` (so a prompt whose samples all tie teaches nothing) and reaches ``min_score``."""
    out, st = [], {"prompts": 0, "kept": 0, "below_min_score": 0, "within_margin": 0}
    for qid, scored in by_prompt(rows, rewards).items():
        st["prompts"] += 1
        best, row = max(scored, key=lambda x: x[0])
        if min_score is not None and best < min_score:
            st["below_min_score"] += 1
            continue
        if best - statistics.fmean(s for s, _ in scored) <= min_margin:
            st["within_margin"] += 1
            continue
        out.append({"instruction": row["instruction"], "input": row["input"], "output": row["text"], "id": str(qid),
                    "meta": {"reward": best, "sample": row["sample"],
                             "unfinished": row.get("finish_reason") == "length"}})
    st["kept"] = len(out)
    st["target_reward"] = statistics.fmean(x["meta"]["reward"] for x in out) if out else None
    return out, st


def dpo_pairs(rows, rewards, mode: str, min_gap: float) -> tuple[list[dict], dict]:
    """Per prompt, comparison v2 records: its best and worst sample (``best-worst``), or all its samples
    (``all``: train dpo's pairs loss forms every pair apart by at least ``min_gap``)."""
    out, st = [], {"prompts": 0, "kept": 0, "pairs": 0, "within_gap": 0}
    for qid, scored in by_prompt(rows, rewards).items():
        st["prompts"] += 1
        ranked = sorted(scored, key=lambda x: -x[0])
        chosen = [ranked[0], ranked[-1]] if mode == "best-worst" else ranked
        pairs = sum(1 for i, (a, _) in enumerate(chosen) for b, _ in chosen[i + 1:] if a > b and a - b >= min_gap)
        if not pairs:
            st["within_gap"] += 1
            continue
        st["pairs"] += pairs
        out.append({"user_input": ALPACA.prompt(ranked[0][1]["instruction"], ranked[0][1]["input"]), "id": str(qid),
                    "responses_and_scores": [{"response": row["text"], "score": s, "source": f"sample-{row['sample']}"}
                                             for s, row in chosen],
                    # answers cut at the token limit: train dpo encodes them without an end-of-sequence token
                    "meta": {"unfinished": [i for i, (_, x) in enumerate(chosen)
                                            if x.get("finish_reason") == "length"]}})
    st["kept"] = len(out)
    st["chosen_reward"] = statistics.fmean(r["responses_and_scores"][0]["score"] for r in out) if out else None
    return out, st


# ---------------------------------------------------------------- the round's training


def train(cfg, r: int, start: str, data: Path, template: PromptTemplate, learning_rate: float) -> dict:
    """Round ``r``'s trainer from ``start`` on ``data``, in ``round_r/checkpoint``: continued from its last
    complete checkpoint when a run of the same settings was cut short there."""
    from gpt4llm.train import dpo, sft

    out = cfg.output_dir / f"round_{r}" / "checkpoint"
    kw = dict(data=str(data), model=f"local:{start}", output_dir=out, seed=cfg.seed + r, epochs=cfg.epochs,
              learning_rate=learning_rate, batch_size=cfg.train_batch_size, merge=True,
              **{n: getattr(cfg, n) for n in SHARED})
    if cfg.method == "dpo":
        t = dpo.DPOSettings(**kw, template=template.name, loss="sigmoid" if cfg.pairs == "best-worst" else "pairs",
                            beta=cfg.beta, min_gap=cfg.min_gap if cfg.pairs == "all" else 0.0, eval_split=0.0)
    else:
        t = sft.SFTSettings(**kw, template=template.name)
    meta = out / common.TRAIN_FILE
    prior = json.loads(meta.read_text()) if meta.is_file() else None
    if prior and prior.get("fingerprint") == t.fingerprint() and prior.get("status") == "done":
        return {"steps": prior.get("steps"), "train_loss": prior.get("train_loss"), "train_seconds": prior.get("seconds")}
    t = t.model_copy(update={"resume": True} if not prior or prior.get("fingerprint") == t.fingerprint()
                     else {"overwrite": True})
    try:
        res = (dpo if cfg.method == "dpo" else sft).run(t)
    except UserError as e:
        raise UserError(f"round {r}: {e}") from None
    return {"steps": res.steps, "train_loss": res.train_loss, "train_seconds": round(res.seconds, 1)}
