"""The training loop of ``train sft``: transformers' ``Trainer`` with our data, collators and loss.

Kept apart from ``sft.py`` so the reward model can reuse the model-loading, LoRA and saving
helpers. Heavy imports live here, so ``gpt4llm --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gpt4llm.errors import UserError
from gpt4llm.templates import IGNORE_INDEX, PromptTemplate
from gpt4llm.train.data import attention_ratio, plan_rows

log = logging.getLogger(__name__)


def precision_flags(precision: str) -> dict[str, bool]:
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise UserError("--precision fp16 needs a GPU; on the CPU use bf16 (autocast; fast where the CPU has "
                        "AVX512-BF16 or AMX) or fp32")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def load_model(cfg, tok):
    """The base model, a pad token if it lacks one, and LoRA adapters if asked."""
    from transformers import AutoModelForCausalLM

    from gpt4llm.train.sft import model_source

    source, kw = model_source(cfg.model)
    if cfg.qlora:
        if not torch.cuda.is_available():
            raise UserError("--qlora needs a CUDA GPU (bitsandbytes 4-bit); use --lora on the CPU")
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_compute_dtype=torch.bfloat16)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kw)
    except Exception as e:
        raise UserError(f"--model {cfg.model}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    add_pad_token(tok, model)
    if cfg.gradient_checkpointing:
        model.config.use_cache = False
    if cfg.lora or cfg.qlora:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if cfg.qlora:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else cfg.lora_targets.split(",")
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    return model


def add_pad_token(tok, model) -> None:
    """Alpaca's recipe: a missing pad token is added as a new token whose embedding is the mean
    of the others, so no existing token changes meaning and EOS stays a token to learn."""
    if tok.pad_token is not None:
        return
    tok.add_special_tokens({"pad_token": "[PAD]"})
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            if emb is not None and emb.weight.shape[0] > old:
                emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)
    model.config.pad_token_id = tok.pad_token_id


class PaddedCollator:
    """Right-padded micro-batches; pad positions get label -100 and attention 0."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"])
            labels[i, :k] = torch.tensor(f["labels"])
            attn[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attn}


class PackedRowsCollator:
    """Padding-free micro-batches: examples end to end in rows, position ids restarting at 0 at
    each example and no attention mask, so transformers masks attention block-diagonally and no
    example sees another. How many rows is ``plan_rows``'s choice (one row with FlashAttention's
    varlen kernels; with SDPA or eager attention as many as keep the L x L scores cheap). A row
    shorter than the longest ends in a pad block of its own (label -100, positions from 0)."""

    def __init__(self, pad_id: int, ratio: float):
        self.pad_id, self.ratio = pad_id, ratio

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = plan_rows([len(f["input_ids"]) for f in features], self.ratio)
        width = max(sum(len(features[i]["input_ids"]) for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                k = len(features[i]["input_ids"])
                ids[r, at:at + k] = torch.tensor(features[i]["input_ids"])
                labels[r, at:at + k] = torch.tensor(features[i]["labels"])
                positions[r, at:at + k] = torch.arange(k)
                at += k
            positions[r, at:] = torch.arange(width - at)
        return {"input_ids": ids, "labels": labels, "position_ids": positions}


def real_tokens(inputs: dict[str, torch.Tensor]) -> int:
    """Non-pad tokens of a micro-batch: the attention mask's ones; in packed rows, the tokens of
    the segments (from one position id 0 to the next) that carry a label."""
    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum())
    if "position_ids" not in inputs or "labels" not in inputs:
        return inputs["input_ids"].numel()
    segment = (inputs["position_ids"] == 0).cumsum(-1)
    segment = segment + torch.arange(segment.shape[0], device=segment.device)[:, None] * (segment.max() + 1)
    labelled = torch.zeros(int(segment.max()) + 1, dtype=torch.bool, device=segment.device)
    labelled[segment[inputs["labels"] != IGNORE_INDEX]] = True
    return int(labelled[segment].sum())


def example_mean_loss(logits: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
    """Mean over the micro-batch's examples of each example's mean token loss.

    In a packed row, example k's tokens are those after the k-th position id 0.
    """
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


def make_trainer_class():
    from transformers import Trainer

    class SFTTrainer(Trainer):
        loss_norm = "example"

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # No KV cache in training: transformers reads packed rows' position ids (block-diagonal
            # attention) only without one; Trainer sets config.use_cache=False, this holds either way.
            inputs = {**inputs, "use_cache": False}
            if self.loss_norm == "token":
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


def tokens_per_second_callback():
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Adds trained (non-pad) tokens per second to every log line."""

        def on_train_begin(self, args, state, control, **kw):
            self.t, self.seen = time.perf_counter(), state.num_input_tokens_seen or 0

        def on_log(self, args, state, control, logs=None, **kw):
            now, seen = time.perf_counter(), state.num_input_tokens_seen or 0
            if logs is not None and now > self.t:
                logs["tokens_per_s"] = round((seen - self.seen) / (now - self.t), 1)
            self.t, self.seen = now, seen

    return Throughput()


def train(cfg, tok, template: PromptTemplate, examples: list[dict], accumulation: int, result) -> None:
    import datasets
    from transformers import TrainingArguments

    model = load_model(cfg, tok)
    args = TrainingArguments(
        output_dir=str(cfg.output_dir), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.per_device_batch, gradient_accumulation_steps=accumulation,
        max_steps=cfg.max_steps or -1, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed,
        **checkpointing_flag(cfg.gradient_checkpointing), report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        remove_unused_columns=False, dataloader_num_workers=0, include_num_input_tokens_seen="non_padding",
        disable_tqdm=cfg.quiet, save_only_model=False, deepspeed=cfg.deepspeed,
        # On a machine without CUDA, say so: accelerate then runs torchrun/accelerate-launched
        # processes as multi-CPU DDP (gloo) instead of as independent copies.
        use_cpu=not torch.cuda.is_available(), **precision_flags(cfg.precision))
    flash = str(getattr(model.config, "_attn_implementation", "")).startswith("flash")
    collator = (PackedRowsCollator(tok.pad_token_id, 0.0 if flash else attention_ratio(model.config)) if cfg.packing
                else PaddedCollator(tok.pad_token_id))
    Trainer = make_trainer_class()
    Trainer.loss_norm = cfg.loss_norm
    trainer = Trainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(examples),
                      data_collator=collator, callbacks=[tokens_per_second_callback()])
    if cfg.loss_norm == "example":
        trainer.loss_is_scaled_for_ga = False  # our loss is a per-micro-batch mean: divide by accumulation
    last = last_checkpoint(cfg.output_dir) if cfg.resume else None
    try:
        out = trainer.train(resume_from_checkpoint=last)
    except torch.OutOfMemoryError as e:
        raise UserError("out of memory: try --lora, a smaller --per-device-batch (the effective --batch-size "
                        "stays), --gradient-checkpointing or a shorter --max-length") from e
    result.steps, result.train_loss = out.global_step, out.training_loss
    result.log_history = trainer.state.log_history
    save(cfg, trainer, tok, template)


def checkpointing_flag(on: bool) -> dict:
    """Activation (gradient) checkpointing under its current TrainingArguments name: transformers
    renamed gradient_checkpointing to activation_checkpointing during 5.x."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": on}


def last_checkpoint(output_dir) -> str | None:
    """The newest complete checkpoint: a kill while one is written leaves a directory without a
    readable trainer_state.json (the Trainer writes it last), which is passed over."""
    import json
    import re
    from pathlib import Path

    found = []
    for d in Path(output_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        try:
            if m and d.is_dir():
                json.loads((d / "trainer_state.json").read_text())
                found.append((int(m.group(1)), str(d)))
        except (OSError, ValueError):
            continue
    return max(found)[1] if found else None


def save(cfg, trainer, tok, template: PromptTemplate) -> None:
    """The final checkpoint: weights (merged if asked), tokenizer, and the template object."""
    out = Path(cfg.output_dir)
    model = trainer.model
    if (cfg.lora or cfg.qlora) and cfg.merge:
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        model.save_pretrained(out)
        tok.save_pretrained(out)
        template.save(out)
