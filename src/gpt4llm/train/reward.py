"""``gpt4llm train rm``: a reward model on scored comparisons, the paper's loss (PAPER.md section 3).

Each prompt's K responses are encoded ONCE per step and every pair (y_l, y_h) with s_l < s_h is
formed inside the loss: mean over pairs of -log sigmoid(r_h - r_l) (``--margin m`` subtracts
m x (s_h - s_l) inside the sigmoid). Peers encode each response once per pair: with K = 3 that is
every response twice. ``--pointwise`` regresses the 1-10 score instead. The model is a scalar-head
``AutoModelForSequenceClassification`` on any causal LM; its input is the Alpaca prompt (the v2
``user_input``, i.e. the SFT template object's prompt) followed by the response.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpt4llm.errors import UserError, require
from gpt4llm.io import write_json

RM_FILE = "gpt4llm_rm.json"


@dataclass
class RMConfig:
    data: str
    """Comparisons: gpt4llm compare output or the released comparison_data_v2.json."""
    output_dir: Path
    model: str = "local:smollm2-135m-instruct"
    """Backbone: any causal LM (the paper: OPT-1.3B)."""
    epochs: float = 1.0
    learning_rate: float = 1e-5
    """Not published by the paper; 1e-5 is the usual full fine-tuning rate for a 1B reward model."""
    batch_size: int = 8
    """Prompts (each with all its K responses) per optimizer step."""
    per_device_batch: int = 4
    max_length: int = 512
    margin: float = 0.0
    """Scale of the score gap subtracted inside the sigmoid (0 = the paper's loss)."""
    pointwise: bool = False
    """Regress the judge's score (MSE) instead of the pairwise loss."""
    eval_split: float = 0.1
    """Share of prompts held out for accuracy, Spearman and the reward-gap distribution."""
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    qlora: bool = False
    merge: bool = True
    """With --lora: save merged weights, so transformers loads the reward model directly."""
    gradient_checkpointing: bool = False
    precision: str = "auto"
    save_steps: int = 200
    resume: bool = False
    overwrite: bool = False
    max_steps: int | None = None
    limit: int | None = None
    seed: int = 42
    logging_steps: int = 10
    report_to: str = "none"
    deepspeed: str | None = None
    quiet: bool = False
    # SFT's loop helpers read these:
    packing: bool = False
    loss_norm: str = "token"

    def fingerprint(self) -> str:
        import hashlib

        keys = ("data", "model", "epochs", "learning_rate", "batch_size", "per_device_batch", "max_length", "margin",
                "pointwise", "eval_split", "lora", "seed", "limit")
        return hashlib.sha256(json.dumps({k: str(getattr(self, k)) for k in keys}).encode()).hexdigest()[:16]


@dataclass
class RMResult:
    output_dir: Path
    groups: int
    pairs: int
    ties: int
    truncated: int
    effective_batch: str
    metrics: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def encode_groups(comparisons, tok, max_length: int) -> tuple[list[dict], dict]:
    """One item per prompt with >= 2 responses: token ids of prompt + each response, and scores."""
    from gpt4llm.pairs import PairStats, pairs_of

    groups, st, truncated = [], PairStats(), 0
    for c in comparisons:
        rs = c.responses_and_scores
        if len(rs) < 2:
            continue
        pairs_of(c, st)
        seqs = []
        for r in rs:
            ids = tok(c.user_input + r.response, add_special_tokens=True)["input_ids"]
            if len(ids) > max_length:
                truncated += 1
                ids = ids[:max_length]
            seqs.append(ids)
        groups.append({"seqs": seqs, "scores": [r.score for r in rs], "length": sum(map(len, seqs))})
    if not groups:
        raise UserError("no prompt with at least 2 scored responses in the data")
    return groups, {"ties": st.ties, "identical": st.identical, "truncated": truncated}


def kwise_loss(rewards, scores, group_of, margin: float = 0.0):
    """Mean over all pairs (within a group, s_l < s_h) of -log sigmoid(r_h - r_l - margin*(s_h - s_l))."""
    import torch
    import torch.nn.functional as F

    same = group_of[:, None] == group_of[None, :]
    better = scores[:, None] > scores[None, :]  # [h, l]
    mask = same & better
    if not mask.any():
        return rewards.sum() * 0.0
    gap = rewards[:, None] - rewards[None, :] - margin * (scores[:, None] - scores[None, :])
    return -F.logsigmoid(gap[mask]).mean()


class GroupCollator:
    """Flattens the K responses of each prompt into one right-padded batch (each encoded once)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, groups: list[dict]):
        import torch

        seqs = [s for g in groups for s in g["seqs"]]
        n = max(map(len, seqs))
        ids = torch.full((len(seqs), n), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], attn[i, : len(s)] = torch.tensor(s), 1
        scores = torch.tensor([x for g in groups for x in g["scores"]], dtype=torch.float)
        group_of = torch.tensor([i for i, g in enumerate(groups) for _ in g["seqs"]])
        return {"input_ids": ids, "attention_mask": attn, "scores": scores, "group_of": group_of}


def rewards_of(model, batch):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits.squeeze(-1).float()


def evaluate(model, groups: list[dict], collator, batch: int = 8) -> dict:
    """Pairwise accuracy (ties excluded and counted), Spearman with the judge, reward gaps."""
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    model.eval()
    correct = total = ties = 0
    gaps, all_r, all_s = [], [], []
    with torch.no_grad():
        for i in range(0, len(groups), batch):
            b = collator(groups[i:i + batch])
            b = {k: v.to(model.device) for k, v in b.items()}
            r = rewards_of(model, b).cpu()
            s, g = b["scores"].cpu(), b["group_of"].cpu()
            all_r += r.tolist()
            all_s += s.tolist()
            for a in range(len(r)):
                for c in range(a + 1, len(r)):
                    if g[a] != g[c]:
                        continue
                    if s[a] == s[c]:
                        ties += 1
                        continue
                    h, lo = (a, c) if s[a] > s[c] else (c, a)
                    gaps.append(float(r[h] - r[lo]))
                    correct += gaps[-1] > 0
                    total += 1
    model.train()
    rho = spearmanr(all_r, all_s).statistic if len(set(all_s)) > 1 else float("nan")
    q = np.quantile(gaps, [0.1, 0.5, 0.9]).tolist() if gaps else [float("nan")] * 3
    return {"pairwise_accuracy": correct / total if total else float("nan"), "pairs": total, "ties_excluded": ties,
            "spearman": float(rho), "reward_gap_mean": float(np.mean(gaps)) if gaps else float("nan"),
            "reward_gap_p10_p50_p90": q}


def run(cfg: RMConfig) -> RMResult:
    import torch

    from gpt4llm.train.loop import checkpointing_flag, last_checkpoint
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from gpt4llm.pairs import load_comparisons
    from gpt4llm.templates import ALPACA
    from gpt4llm.train.data import split_batch
    from gpt4llm.train.loop import add_pad_token, precision_flags
    from gpt4llm.train.sft import _check_output_dir, load_tokenizer, model_source

    if not 0 <= cfg.eval_split < 1:
        raise UserError(f"--eval-split {cfg.eval_split}: must be in [0, 1)")
    if cfg.report_to not in ("none", "tensorboard", "wandb"):
        raise UserError(f"--report-to {cfg.report_to}: use none, tensorboard or wandb")
    if cfg.report_to != "none":
        require(cfg.report_to, f"--report-to {cfg.report_to}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = split_batch(cfg.batch_size, cfg.per_device_batch, world)
    comparisons = load_comparisons(cfg.data)[: cfg.limit] if cfg.limit else load_comparisons(cfg.data)
    tok = load_tokenizer(cfg.model)
    source, kw = model_source(cfg.model)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32, **kw)
    except (ValueError, KeyError) as e:
        raise UserError(f"--model {cfg.model}: cannot be a reward model backbone ({str(e).splitlines()[0]}); "
                        "use a causal LM checkpoint (OPT, LLaMA, Qwen, SmolLM2...)") from e
    add_pad_token(tok, model)
    model.config.pad_token_id = tok.pad_token_id
    if cfg.lora or cfg.qlora:
        from peft import LoraConfig, get_peft_model

        targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else cfg.lora_targets.split(",")
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                 target_modules=targets, task_type="SEQ_CLS"))
    groups, st = encode_groups(comparisons, tok, cfg.max_length)
    rng = random.Random(cfg.seed)
    order = list(range(len(groups)))
    rng.shuffle(order)
    n_eval = int(len(groups) * cfg.eval_split) if len(groups) > 1 else 0
    held, train_groups = [groups[i] for i in order[:n_eval]], [groups[i] for i in order[n_eval:]]
    split = f"{cfg.batch_size} prompts = {cfg.per_device_batch} per device x {accumulation} accumulation x {world} processes"
    result = RMResult(cfg.output_dir, len(groups), sum(len(g["scores"]) * (len(g["scores"]) - 1) // 2 for g in groups)
                      - st["ties"], st["ties"], st["truncated"], split)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        _check_output_dir(cfg)  # the same rule as SFT: refuse another run unless --resume/--overwrite
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        write_json(cfg.output_dir / "gpt4llm_train.json", {"fingerprint": cfg.fingerprint(), "status": "running"})
    collator = GroupCollator(tok.pad_token_id)

    class RMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            r = rewards_of(model, inputs)
            if cfg.pointwise:
                loss = torch.nn.functional.mse_loss(r, inputs["scores"])
            else:
                loss = kwise_loss(r, inputs["scores"], inputs["group_of"], cfg.margin)
            return (loss, r) if return_outputs else loss

    import datasets

    args = TrainingArguments(
        output_dir=str(cfg.output_dir), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=0.03, per_device_train_batch_size=cfg.per_device_batch,
        gradient_accumulation_steps=accumulation, max_steps=cfg.max_steps or -1, save_strategy="steps",
        save_steps=cfg.save_steps, save_total_limit=3, logging_steps=cfg.logging_steps, seed=cfg.seed,
        data_seed=cfg.seed, **checkpointing_flag(cfg.gradient_checkpointing),
        report_to=[] if cfg.report_to == "none" else [cfg.report_to], train_sampling_strategy="group_by_length",
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=cfg.quiet, deepspeed=cfg.deepspeed,
        use_cpu=not torch.cuda.is_available(), **precision_flags(cfg.precision))
    trainer = RMTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(train_groups),
                        data_collator=collator)
    trainer.loss_is_scaled_for_ga = False
    t0 = time.perf_counter()

    out = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir) if cfg.resume else None)
    result.steps, result.seconds = out.global_step, time.perf_counter() - t0
    model = trainer.model
    if cfg.lora or cfg.qlora:
        model = model.merge_and_unload() if cfg.merge else model
    result.metrics = evaluate(model, held, collator) if held else {}
    if main:
        model.save_pretrained(cfg.output_dir)
        tok.save_pretrained(cfg.output_dir)
        ALPACA.save(cfg.output_dir)
        meta = {"fingerprint": cfg.fingerprint(), "status": "done", "kind": "reward_model",
                "config": {k: str(v) for k, v in asdict(cfg).items()}, "groups": result.groups,
                "pairs": result.pairs, "ties": result.ties, "truncated": result.truncated, "held_out": len(held),
                "metrics": result.metrics, "steps": result.steps, "log_history": trainer.state.log_history}
        write_json(cfg.output_dir / "gpt4llm_train.json", meta)
        write_json(cfg.output_dir / RM_FILE, {"metrics": result.metrics})
    return result
