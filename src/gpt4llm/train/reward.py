"""``gpt4llm train rm``: a reward model on scored comparisons, the paper's loss (PAPER.md section 3).

Each prompt's K responses are encoded ONCE per step and every pair (y_l, y_h) with s_l < s_h is
formed inside the loss: mean over pairs of -log sigmoid(r_h - r_l) (``--margin m`` subtracts
m x (s_h - s_l) inside the sigmoid). Peers encode each response once per pair: with K = 3 that is
every response twice. ``--pointwise`` regresses the 1-10 score instead. The model is a scalar-head
``AutoModelForSequenceClassification`` on any causal LM; its input is the Alpaca prompt (the v2
``user_input``, i.e. the SFT template object's prompt) followed by the response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from gpt4llm.errors import UserError
from gpt4llm.io import write_json
from gpt4llm.settings import Opt
from gpt4llm.train import common

RM_FILE = "gpt4llm_rm.json"


class RMSettings(common.TrainSettings):
    """gpt4llm train rm: a reward model trained K-wise on scored comparisons (each response encoded once per step)."""

    data: Annotated[str, Opt("-d", pipeline=True)]
    """Comparisons: gpt4llm compare output or the released comparison_data_v2.json."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the comparisons (not published by the paper)."""
    learning_rate: Annotated[float, Field(gt=0), Opt("--lr")] = 1e-5
    """Peak learning rate (not published; 1e-5 is the usual full fine-tuning rate for a 1B reward model)."""
    batch_size: int = Field(8, ge=1)
    """Prompts (each with all its K responses) per optimizer step."""
    margin: float = Field(0.0, ge=0)
    """Scale of the score gap subtracted inside the sigmoid (0 = the paper's loss)."""
    pointwise: bool = False
    """Regress the judge's 1-10 score (MSE) instead of the pairwise loss."""
    eval_split: float = Field(0.1, ge=0, lt=1)
    """Share of prompts held out for accuracy, Spearman and the reward-gap distribution."""
    merge: bool = True
    """With --lora: save merged weights, so transformers loads the reward model directly."""
    layers: int | None = Field(None, ge=1)
    """Keep only the first N decoder layers of --model (a tiny reward model for smoke runs)."""

    FINGERPRINT: ClassVar[tuple[str, ...]] = (
        "data", "model", "epochs", "learning_rate", "batch_size", "per_device_batch", "max_length", "margin",
        "pointwise", "eval_split", "lora", "seed", "limit", "layers")


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


def truncated_base(model: str, layers: int, out: Path) -> Path:
    """The first ``layers`` decoder layers of ``model``, saved once in ``out`` (a tiny backbone)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").is_file():
        return out
    src, kwargs = common.model_source(model)
    config = AutoConfig.from_pretrained(src, **kwargs)
    if getattr(config, "num_hidden_layers", None) is None:
        raise UserError(f"--layers: {model} has no num_hidden_layers to cut")
    config.num_hidden_layers = min(layers, config.num_hidden_layers)
    for key in ("layer_types",):  # per-layer lists must match the new depth
        if isinstance(getattr(config, key, None), list):
            setattr(config, key, getattr(config, key)[: config.num_hidden_layers])
    m = AutoModelForCausalLM.from_pretrained(src, config=config, dtype=torch.float32, **kwargs)
    tmp = out.with_name(out.name + ".tmp")
    m.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(src, **kwargs).save_pretrained(tmp)
    tmp.rename(out)
    return out


def run(cfg: RMSettings) -> RMResult:
    import datasets
    import torch
    from transformers import Trainer

    from gpt4llm.pairs import load_comparisons
    from gpt4llm.templates import ALPACA
    from gpt4llm.train.data import split_batch

    cfg.check()
    world = common.world_size()
    accumulation = split_batch(cfg.batch_size, cfg.per_device_batch, world)
    comparisons = load_comparisons(cfg.data)[: cfg.limit] if cfg.limit else load_comparisons(cfg.data)
    tok = common.load_tokenizer(cfg.model)
    groups, st = encode_groups(comparisons, tok, cfg.max_length)
    held, train_groups = common.held_out_split(groups, cfg.eval_split, cfg.seed)
    split = f"{cfg.batch_size} prompts = {cfg.per_device_batch} per device x {accumulation} accumulation x {world} processes"
    result = RMResult(cfg.output_dir, len(groups), sum(len(g["scores"]) * (len(g["scores"]) - 1) // 2 for g in groups)
                      - st["ties"], st["ties"], st["truncated"], split)
    if cfg.dry_run:
        return result
    backbone = cfg.model
    if cfg.layers:  # the backbone cut to its first layers (same tokenizer), beside the output directory
        base = cfg.output_dir.with_name(f"{cfg.output_dir.name}-base-{cfg.layers}-layers")
        backbone = f"local:{truncated_base(cfg.model, cfg.layers, base)}"
    model = common.load_model(cfg, tok, "AutoModelForSequenceClassification", name=backbone, num_labels=1)
    common.start_run(cfg)
    collator = GroupCollator(tok.pad_token_id)

    class RMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            r = rewards_of(model, inputs)
            if cfg.pointwise:
                loss = torch.nn.functional.mse_loss(r, inputs["scores"])
            else:
                loss = kwise_loss(r, inputs["scores"], inputs["group_of"], cfg.margin)
            return (loss, r) if return_outputs else loss

    args = common.training_args(cfg, cfg.epochs, cfg.learning_rate, accumulation,
                                train_sampling_strategy="group_by_length")
    trainer = RMTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(train_groups),
                        data_collator=collator)
    common.quiet_trainer(trainer, cfg.quiet)
    trainer.loss_is_scaled_for_ga = False
    t0 = time.perf_counter()
    out = common.train(trainer, cfg)
    result.steps, result.seconds = out.global_step, time.perf_counter() - t0
    model = common.save_model(cfg, trainer, tok, ALPACA, merge=cfg.merge)
    result.metrics = evaluate(model, held, collator) if held else {}
    if common.is_main_process():
        common.write_meta(cfg.output_dir, {
            "fingerprint": cfg.fingerprint(), "status": "done", "kind": "reward_model", "config": common.config_dict(cfg),
            "groups": result.groups, "pairs": result.pairs, "ties": result.ties, "truncated": result.truncated,
            "held_out": len(held), "metrics": result.metrics, "steps": result.steps,
            "log_history": trainer.state.log_history})
        write_json(cfg.output_dir / RM_FILE, {"metrics": result.metrics})
    return result
