"""``gpt4llm train sft``: supervised fine-tuning with the Alpaca recipe (PAPER.md section 4).

Load: Alpaca records with the teacher's ``output``; encode them with the template object (loss
on output + EOS only). Do: train with transformers' ``Trainer`` (so ``accelerate launch`` runs
it under DDP, FSDP or DeepSpeed unchanged), padding-free packing by default (a micro-batch is
its examples end to end in one or a few rows with position ids restarting at 0; attention never
crosses examples), example-mean loss as in the paper's per-device batch of 1. Write: a standard
HF checkpoint (model + tokenizer + ``gpt4llm_template.json`` + ``gpt4llm_train.json``) that
transformers, vLLM, ``gpt4llm serve`` and ``gpt4llm answer`` load directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from gpt4llm.errors import UserError
from gpt4llm.settings import Opt
from gpt4llm.templates import IGNORE_INDEX, TEMPLATES
from gpt4llm.train import common
from gpt4llm.train.data import (DataStats, PackedRowsCollator, PaddedCollator, attention_ratio, encode_all,
                                load_sft_records, padding_share, real_tokens, render_example, split_batch)

log = logging.getLogger(__name__)


class SFTSettings(common.TrainSettings):
    """gpt4llm train sft: fine-tune a student on the teacher's answers with the Alpaca recipe."""

    data: Annotated[str, Opt("-d", pipeline=True)]
    """Alpaca records with output (what gpt4llm generate writes): .json/.jsonl/.parquet/hf:."""
    template: Literal["alpaca", "chat"] = "alpaca"
    """alpaca (the paper's prompt; target = output + EOS) or chat (the tokenizer's chat template)."""
    epochs: float = Field(3.0, gt=0)
    """Passes over the data (paper: 3)."""
    learning_rate: Annotated[float, Field(gt=0), Opt("--lr")] = 2e-5
    """Peak learning rate (paper: 2e-5)."""
    batch_size: int = Field(64, ge=1)
    """Effective batch in examples = per-device batch x accumulation x processes (paper: 64)."""
    overlong: Literal["truncate", "skip"] = "truncate"
    """truncate or skip examples longer than --max-length (counted either way)."""
    packing: bool = True
    """Padding-free micro-batches (no pad tokens, no cross-example attention); else padded batches."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding when not packing)."""
    loss_norm: Literal["example", "token"] = "example"
    """example: mean over examples of their mean token loss (the paper, per-device batch 1); token: mean over all target tokens."""
    merge: bool = False
    """With --lora: save the merged full weights instead of the adapter."""
    eval_split: float = Field(0.0, ge=0, lt=1)
    """Share of the records held out (a seeded draw) for a held-out loss after training (0: train on all, as the paper)."""
    launcher: Annotated[str | None, Opt(cli=False)] = None
    """Pipeline: how training is launched at scale, shown in the plan (e.g. accelerate launch --config_file ...)."""

    FINGERPRINT: ClassVar[tuple[str, ...]] = (
        "data", "model", "template", "epochs", "learning_rate", "scheduler", "warmup_ratio", "weight_decay",
        "batch_size", "per_device_batch", "max_length", "overlong", "packing", "loss_norm", "lora", "lora_r", "seed",
        "limit")


    def fingerprint(self) -> str:
        base = super().fingerprint()  # unchanged without a held-out split: runs made before it still resume
        if not self.eval_split:
            return base
        import hashlib

        return hashlib.sha256(f"{base}\0eval_split={self.eval_split}".encode()).hexdigest()[:16]


@dataclass
class SFTResult:
    output_dir: Path
    stats: DataStats
    first_example: str
    effective_batch: str
    steps: int = 0
    train_loss: float | None = None
    seconds: float = 0.0
    log_history: list = field(default_factory=list)
    held_out: int = 0
    eval_loss: float | None = None


def example_mean_loss(logits, labels, position_ids):
    """Mean over the micro-batch's examples of each example's mean token loss.

    In a packed row, example k's tokens are those after the k-th position id 0.
    """
    import torch
    import torch.nn.functional as F

    # Shift the labels, not the logits: slicing [B, T, vocab] logits would copy them (and their
    # gradient), the largest tensors of a step for a 49K-token vocabulary.
    target = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    ce = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX,
                         reduction="none").view(target.shape)
    mask = target != IGNORE_INDEX
    if position_ids is not None:
        starts = (position_ids == 0).cumsum(-1)
        example = torch.cat([starts[:, 1:], starts[:, -1:]], dim=1)  # target t is the token at t + 1
        example = example + torch.arange(example.shape[0], device=example.device)[:, None] * (example.max() + 1)
    else:
        example = torch.arange(target.shape[0], device=target.device)[:, None].expand_as(target)
    example = example.reshape(-1)[mask.reshape(-1)]
    n = int(example.max()) + 1 if example.numel() else 1
    sums = torch.zeros(n, device=ce.device).index_add_(0, example, ce.reshape(-1)[mask.reshape(-1)])
    counts = torch.zeros(n, device=ce.device).index_add_(0, example, torch.ones_like(example, dtype=torch.float))
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def make_trainer_class(loss_norm: str):
    import torch
    from transformers import Trainer

    class SFTTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # No KV cache in training: transformers reads packed rows' position ids (block-diagonal
            # attention) only without one; Trainer sets config.use_cache=False, this holds either way.
            inputs = {**inputs, "use_cache": False}
            if loss_norm == "token":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = example_mean_loss(outputs.logits, labels, inputs.get("position_ids"))
            return (loss, outputs) if return_outputs else loss

        def _track_num_input_tokens(self, inputs):  # the trained tokens, pad blocks of packed rows excluded
            if self.args.include_num_input_tokens_seen != "non_padding":
                return super()._track_num_input_tokens(inputs)
            count = torch.as_tensor(real_tokens(inputs), device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += self.accelerator.gather(count).sum().item()

    return SFTTrainer


def _attention_ratio(name: str) -> float:
    """``data.attention_ratio`` of the model's config (SDPA assumed), or 0 when it cannot be read."""
    from transformers import AutoConfig

    try:
        source, kw = common.model_source(name)
        return attention_ratio(AutoConfig.from_pretrained(source, **kw))
    except Exception as e:  # a hub id offline, or an architecture without these fields: predict one row
        log.debug("no attention ratio for %s: %s", name, e)
        return 0.0


def run(cfg: SFTSettings) -> SFTResult:
    cfg.check()
    template = TEMPLATES[cfg.template]
    world = common.world_size()
    accumulation = split_batch(cfg.batch_size, cfg.per_device_batch, world)
    split = (f"{cfg.batch_size} = {cfg.per_device_batch} per device x {accumulation} accumulation x "
             f"{world} process{'es' if world > 1 else ''}")
    records = load_sft_records(cfg.data)[: cfg.limit] if cfg.limit else load_sft_records(cfg.data)
    tok = common.load_tokenizer(cfg.model)
    if cfg.template == "chat" and not tok.chat_template:
        raise UserError(f"--template chat: {cfg.model} has no chat template; use --template alpaca")
    examples, stats = encode_all(records, tok, template, cfg.max_length, cfg.overlong)
    held, examples = common.held_out_split(examples, cfg.eval_split, cfg.seed)
    stats.padding_share = round(padding_share([e["length"] for e in examples], cfg.per_device_batch,
                                              cfg.packing, cfg.group_by_length, _attention_ratio(cfg.model),
                                              cfg.seed), 4)
    result = SFTResult(cfg.output_dir, stats, render_example(tok, examples[0]), split, held_out=len(held))
    if cfg.dry_run:
        return result
    common.start_run(cfg)
    t0 = time.perf_counter()
    _train(cfg, tok, template, examples, accumulation, result, held)
    result.seconds = time.perf_counter() - t0
    if common.is_main_process():
        common.write_meta(cfg.output_dir, {
            "fingerprint": cfg.fingerprint(), "status": "done", "config": common.config_dict(cfg),
            "data_stats": stats.as_dict(), "effective_batch": split, "steps": result.steps,
            "train_loss": result.train_loss, "seconds": round(result.seconds, 1), "log_history": result.log_history,
            **({"held_out": result.held_out, "metrics": {"eval_loss": result.eval_loss}} if held else {})})
    return result


def _train(cfg: SFTSettings, tok, template, examples: list[dict], accumulation: int, result: SFTResult,
           held: list[dict]) -> None:
    import datasets

    model = common.load_model(cfg, tok)
    args = common.training_args(cfg, cfg.epochs, cfg.learning_rate, accumulation,
                                train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
                                include_num_input_tokens_seen="non_padding")
    flash = str(getattr(model.config, "_attn_implementation", "")).startswith("flash")
    collator = (PackedRowsCollator(tok.pad_token_id, 0.0 if flash else attention_ratio(model.config)) if cfg.packing
                else PaddedCollator(tok.pad_token_id))
    trainer = make_trainer_class(cfg.loss_norm)(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), data_collator=collator,
        callbacks=[common.tokens_per_second_callback()])
    common.quiet_trainer(trainer, cfg.quiet)
    if cfg.loss_norm == "example":
        trainer.loss_is_scaled_for_ga = False  # our loss is a per-micro-batch mean: divide by accumulation
    out = common.train(trainer, cfg)
    result.steps, result.train_loss = out.global_step, out.training_loss
    if held:  # the held-out loss, by the training loss's own definition (--loss-norm), logits not kept
        trainer.args.prediction_loss_only = True
        result.eval_loss = float(trainer.evaluate(eval_dataset=datasets.Dataset.from_list(held))["eval_loss"])
    result.log_history = trainer.state.log_history
    common.save_model(cfg, trainer, tok, template, merge=cfg.merge)
