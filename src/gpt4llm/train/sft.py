"""``gpt4llm train sft``: supervised fine-tuning with the Alpaca recipe (PAPER.md section 4).

Load: Alpaca records with the teacher's ``output``; encode them with the template object (loss
on output + EOS only). Do: train with transformers' ``Trainer`` (so ``accelerate launch`` runs
it under DDP, FSDP or DeepSpeed unchanged), padding-free packing by default (a micro-batch is
its examples end to end in one or a few rows with position ids restarting at 0; attention never
crosses examples),
example-mean loss as in the paper's per-device batch of 1. Write: a standard HF checkpoint
(model + tokenizer + ``gpt4llm_template.json`` + ``gpt4llm_train.json``) that transformers,
vLLM, ``gpt4llm serve`` and ``gpt4llm answer`` load directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpt4llm.errors import UserError, require
from gpt4llm.io import write_json
from gpt4llm.templates import IGNORE_INDEX, TEMPLATES
from gpt4llm.train.data import DataStats, attention_ratio, encode_all, load_sft_records, padding_share, render_example, split_batch

log = logging.getLogger(__name__)
TRAIN_FILE = "gpt4llm_train.json"


@dataclass
class SFTConfig:
    data: str
    """Alpaca records with `output` (what gpt4llm generate writes): .json/.jsonl/.parquet/hf:."""
    output_dir: Path
    """Where the checkpoint goes; checkpoints every --save-steps land in it too."""
    model: str = "local:smollm2-135m-instruct"
    """Base model: local:NAME|PATH, a checkpoint dir, or a hub id."""
    template: str = "alpaca"
    """alpaca (the paper's prompt; target = output + EOS) or chat (the tokenizer's chat template)."""
    epochs: float = 3.0
    """Passes over the data (paper: 3)."""
    learning_rate: float = 2e-5
    """Peak learning rate (paper: 2e-5)."""
    scheduler: str = "cosine"
    """LR schedule after warm-up (paper: cosine)."""
    warmup_ratio: float = 0.03
    """Share of steps of linear warm-up (paper: 0.03)."""
    weight_decay: float = 0.0
    """AdamW weight decay (paper: 0)."""
    batch_size: int = 64
    """Effective batch in examples = per-device batch x accumulation x processes (paper: 64)."""
    per_device_batch: int = 4
    """Examples per micro-batch on each device; more is faster until memory runs out."""
    max_length: int = 512
    """Tokens per example (paper: 512); longer ones are truncated or skipped, and counted."""
    overlong: str = "truncate"
    """truncate or skip examples longer than max_length."""
    packing: bool = True
    """Padding-free micro-batches (no pad tokens, no cross-example attention); else padded batches."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding when not packing)."""
    loss_norm: str = "example"
    """example: mean over examples of their mean token loss (the paper, per-device batch 1); token: mean over all target tokens."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% slower."""
    precision: str = "auto"
    """auto (bf16 on a GPU that has it, fp16 on other GPUs, fp32 on CPU), bf16, fp16 or fp32."""
    lora: bool = False
    """Train LoRA adapters (PEFT) instead of all weights."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    """Modules that get adapters (comma list or all-linear)."""
    qlora: bool = False
    """Load the base in 4-bit (bitsandbytes, CUDA only) and train LoRA on it."""
    merge: bool = False
    """With --lora: save the merged full weights instead of the adapter."""
    save_steps: int = 200
    """Checkpoint every N optimizer steps (paper: 200)."""
    save_total_limit: int | None = 3
    resume: bool = False
    """Continue from the last checkpoint in output_dir, mid-epoch, with the same data order."""
    overwrite: bool = False
    """Replace a different run already in output_dir."""
    max_steps: int | None = None
    """Stop after N optimizer steps (smoke runs); a complete checkpoint is still saved."""
    limit: int | None = None
    """Train on the first N records only."""
    seed: int = 42
    logging_steps: int = 10
    report_to: str = "none"
    """none, tensorboard or wandb (when installed)."""
    deepspeed: str | None = None
    """A DeepSpeed JSON config (e.g. configs/deepspeed/zero3_offload.json, the paper's ZeRO-3 offload)."""
    dry_run: bool = False
    """Prepare the data, print token statistics, train nothing."""
    quiet: bool = False

    def fingerprint(self) -> str:
        """What makes two runs the same run (so --resume may continue it)."""
        keys = ("data", "model", "template", "epochs", "learning_rate", "scheduler", "warmup_ratio", "weight_decay",
                "batch_size", "per_device_batch", "max_length", "overlong", "packing", "loss_norm", "lora", "lora_r",
                "seed", "limit")
        return hashlib.sha256(json.dumps({k: str(getattr(self, k)) for k in keys}).encode()).hexdigest()[:16]


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


def model_source(name: str) -> tuple[str, dict]:
    """local:NAME|PATH, a directory, or a hub id -> (from_pretrained path, extra kwargs)."""
    from gpt4llm.backends import EMBEDDED
    from gpt4llm.backends.local import load_model, resolve

    name = name.removeprefix("local:")
    source, _ = resolve(name)
    if name == EMBEDDED and source.endswith(".gguf"):
        load_model(name)  # the first load writes the dequantized safetensors cache; train from that
        source, _ = resolve(name)
    if source.endswith(".gguf"):
        return os.path.dirname(source), {"gguf_file": os.path.basename(source)}
    return source, {}


def _attention_ratio(name: str) -> float:
    """``data.attention_ratio`` of the model's config (SDPA assumed), or 0 when it cannot be read."""
    from transformers import AutoConfig

    try:
        source, kw = model_source(name)
        return attention_ratio(AutoConfig.from_pretrained(source, **kw))
    except Exception as e:  # a hub id offline, or an architecture without these fields: predict one row
        log.debug("no attention ratio for %s: %s", name, e)
        return 0.0


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source, kw = model_source(name)
    try:
        return AutoTokenizer.from_pretrained(source, **kw)
    except Exception as e:
        raise UserError(f"--model {name}: cannot load the tokenizer ({type(e).__name__}: {str(e).splitlines()[0]})") from e


def _check_output_dir(cfg: SFTConfig) -> None:
    d = cfg.output_dir
    if not d.exists() or not any(d.iterdir()):
        return
    meta = d / TRAIN_FILE
    same = meta.is_file() and json.loads(meta.read_text()).get("fingerprint") == cfg.fingerprint()
    if cfg.overwrite:
        shutil.rmtree(d)
    elif cfg.resume:
        if not same:
            raise UserError(f"{d}: holds a different run (other data or settings); --resume continues only the "
                            "same run; use --overwrite to replace it")
    else:
        raise UserError(f"{d}: already holds a run; pass --resume to continue it or --overwrite to replace it")


def run(cfg: SFTConfig) -> SFTResult:
    if cfg.template not in TEMPLATES:
        raise UserError(f"--template {cfg.template}: use one of {', '.join(TEMPLATES)}")
    if cfg.deepspeed and not Path(cfg.deepspeed).is_file():
        raise UserError(f"--deepspeed {cfg.deepspeed}: file not found")
    if cfg.loss_norm not in ("example", "token"):
        raise UserError(f"--loss-norm {cfg.loss_norm}: use example or token")
    if cfg.report_to not in ("none", "tensorboard", "wandb"):
        raise UserError(f"--report-to {cfg.report_to}: use none, tensorboard or wandb")
    if cfg.report_to != "none":
        require(cfg.report_to, f"--report-to {cfg.report_to}")
    template = TEMPLATES[cfg.template]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = split_batch(cfg.batch_size, cfg.per_device_batch, world)
    split = (f"{cfg.batch_size} = {cfg.per_device_batch} per device x {accumulation} accumulation x "
             f"{world} process{'es' if world > 1 else ''}")
    records = load_sft_records(cfg.data)[: cfg.limit] if cfg.limit else load_sft_records(cfg.data)
    tok = load_tokenizer(cfg.model)
    if cfg.template == "chat" and not tok.chat_template:
        raise UserError(f"--template chat: {cfg.model} has no chat template; use --template alpaca")
    examples, stats = encode_all(records, tok, template, cfg.max_length, cfg.overlong)
    stats.padding_share = round(padding_share([e["length"] for e in examples], cfg.per_device_batch,
                                              cfg.packing, cfg.group_by_length, _attention_ratio(cfg.model),
                                              cfg.seed), 4)
    result = SFTResult(cfg.output_dir, stats, render_example(tok, examples[0]), split)
    if cfg.dry_run:
        return result
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun/accelerate, rank 0 owns the files
    if main_process:
        _check_output_dir(cfg)
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        # Written first, so a killed run can be recognised and resumed.
        write_json(cfg.output_dir / TRAIN_FILE, {"fingerprint": cfg.fingerprint(), "status": "running"})
    t0 = time.perf_counter()
    from gpt4llm.train.loop import train

    train(cfg, tok, template, examples, accumulation, result)
    result.seconds = time.perf_counter() - t0
    if not main_process:
        return result
    meta = {"fingerprint": cfg.fingerprint(), "status": "done", "config": {k: str(v) for k, v in asdict(cfg).items()},
            "data_stats": stats.as_dict(), "effective_batch": split, "steps": result.steps,
            "train_loss": result.train_loss, "seconds": round(result.seconds, 1), "log_history": result.log_history}
    write_json(cfg.output_dir / TRAIN_FILE, meta)
    return result
