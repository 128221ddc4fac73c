"""What every trainer shares (``train sft``, ``train rm``, ``train dpo``): the settings they have in
common, loading the model and tokenizer (the embedded GGUF, a directory or a hub id), a pad token,
LoRA/QLoRA, precision, the output directory's rules, the ``TrainingArguments``, checkpoint
discovery and atomic metadata writes.

Every trainer runs under transformers' ``Trainer``, so ``accelerate launch`` runs it under DDP,
FSDP or DeepSpeed unchanged. Heavy imports (torch, transformers, peft) happen inside the
functions, so ``gpt4llm --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.errors import UserError, require
from gpt4llm.io import write_json
from gpt4llm.settings import Opt, Settings

log = logging.getLogger(__name__)
TRAIN_FILE = "gpt4llm_train.json"  # the run's fingerprint, status, config, data statistics and log


class TrainSettings(Settings):
    """Settings every trainer has, with the same meaning and default."""

    output_dir: Annotated[Path, Opt("-o", pipeline=True)]
    """Checkpoint directory; checkpoints every --save-steps land in it too."""
    model: Annotated[str, Opt("-m", pipeline=True)] = DEFAULT_MODEL
    """Base model: local:NAME|PATH, a checkpoint directory, or a hub id."""
    scheduler: str = "cosine"
    """LR schedule after warm-up (paper: cosine)."""
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    """Share of steps of linear warm-up (paper: 0.03)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay (paper: 0)."""
    per_device_batch: int = Field(4, ge=1)
    """Examples (prompts, for the reward model) per micro-batch on each device; more is faster until memory runs out."""
    max_length: int = Field(512, ge=8)
    """Tokens per sequence (paper: 512); longer ones are truncated or skipped, and counted."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% slower."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto (bf16 on a GPU that has it, fp16 on other GPUs, fp32 on CPU), bf16, fp16 or fp32."""
    lora: bool = False
    """Train LoRA adapters (PEFT) instead of all weights."""
    lora_r: int = Field(16, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scaling (alpha / r multiplies the adapters' output)."""
    lora_dropout: float = Field(0.05, ge=0, le=1)
    """Dropout on the LoRA adapters' input."""
    lora_targets: str = "all-linear"
    """Modules that get adapters (comma list) or all-linear."""
    qlora: bool = False
    """Load the base in 4-bit (bitsandbytes, CUDA only) and train LoRA on it."""
    save_steps: int = Field(200, ge=1)
    """Checkpoint every N optimizer steps (paper: 200)."""
    save_total_limit: int | None = Field(3, ge=1)
    """Keep the newest N checkpoints."""
    resume: Annotated[bool, Opt(pipeline=True)] = False
    """Continue the run in --output-dir from its last complete checkpoint, with the same data order."""
    overwrite: Annotated[bool, Opt(pipeline=True)] = False
    """Replace a different run in --output-dir."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after N optimizer steps (smoke runs); a complete checkpoint is still saved."""
    limit: int | None = Field(None, ge=1)
    """Train on the first N records only."""
    seed: Annotated[int, Opt(pipeline=True)] = 42
    """Seed of the data order, initialisation and dropout (pipeline: the file's seed)."""
    logging_steps: int = Field(10, ge=1)
    """Log the loss every N steps."""
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    """none, tensorboard or wandb (when installed)."""
    deepspeed: str | None = None
    """A DeepSpeed JSON config (e.g. configs/deepspeed/zero3_offload.json, the paper's ZeRO-3 offload)."""
    dry_run: Annotated[bool, Opt(pipeline=True)] = False
    """Prepare the data, print its statistics, train nothing."""
    quiet: Annotated[bool, Opt("-q", pipeline=True)] = False
    """No progress bar or log lines."""

    FINGERPRINT: ClassVar[tuple[str, ...]] = ()  # the settings that make two runs the same run (--resume)

    def fingerprint(self) -> str:
        """What makes two runs the same run (so --resume may continue it)."""
        import hashlib

        return hashlib.sha256(json.dumps({k: str(getattr(self, k)) for k in self.FINGERPRINT}).encode()).hexdigest()[:16]

    def check(self) -> None:
        """Checks that need no model: before any loading."""
        if self.deepspeed and not Path(self.deepspeed).is_file():
            raise UserError(f"--deepspeed {self.deepspeed}: file not found")
        if self.report_to != "none":
            require(self.report_to, f"--report-to {self.report_to}")


# ---------------------------------------------------------------- processes and files


def held_out_split(items: list, share: float, seed: int) -> tuple[list, list]:
    """(held out, trained): a seeded shuffle, the first ``share`` of it held out (none of a single item)."""
    import random

    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = int(len(items) * share) if len(items) > 1 else 0
    return [items[i] for i in order[:n]], [items[i] for i in order[n:]]


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Under torchrun/accelerate, rank 0 owns the files."""
    return int(os.environ.get("RANK", "0")) == 0


def check_output_dir(cfg: TrainSettings) -> None:
    """An output directory holding another run is refused unless --resume (the same run) or --overwrite."""
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


def start_run(cfg: TrainSettings) -> None:
    """Claim the output directory; the metadata is written first, so a killed run is recognised."""
    if is_main_process():
        check_output_dir(cfg)
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        write_meta(cfg.output_dir, {"fingerprint": cfg.fingerprint(), "status": "running"})


def write_meta(output_dir: Path, meta: dict) -> None:
    """``gpt4llm_train.json``, atomically: resume reads it, so it is never half-written."""
    write_json(Path(output_dir) / TRAIN_FILE, meta)


def config_dict(cfg: TrainSettings) -> dict[str, str]:
    return {k: str(v) for k, v in cfg.model_dump().items()}


def last_checkpoint(output_dir) -> str | None:
    """The newest complete checkpoint: a kill while one is written leaves a directory without a
    readable trainer_state.json (the Trainer writes it last), which is passed over."""
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


# ---------------------------------------------------------------- models


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


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source, kw = model_source(name)
    try:
        return AutoTokenizer.from_pretrained(source, **kw)
    except Exception as e:
        raise UserError(f"--model {name}: cannot load the tokenizer ({type(e).__name__}: {str(e).splitlines()[0]})") from e


def add_pad_token(tok, model) -> None:
    """Alpaca's recipe: a missing pad token is added as a new token whose embedding is the mean
    of the others, so no existing token changes meaning and EOS stays a token to learn."""
    import torch

    if tok.pad_token is not None:
        model.config.pad_token_id = tok.pad_token_id
        return
    tok.add_special_tokens({"pad_token": "[PAD]"})
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        for emb in (model.get_input_embeddings(), model.get_output_embeddings()):
            if emb is not None and emb.weight.shape[0] > old:
                emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)
    model.config.pad_token_id = tok.pad_token_id


def load_model(cfg: TrainSettings, tok, auto_class: str = "AutoModelForCausalLM", name: str | None = None,
               **kwargs: Any):
    """The base model (4-bit with --qlora), a pad token if the tokenizer lacks one, and LoRA adapters
    if asked. ``auto_class``: AutoModelForCausalLM, or AutoModelForSequenceClassification for a
    reward model (``num_labels=1``). ``name``: another model than --model (a cut-down backbone)."""
    import torch
    import transformers

    source, kw = model_source(name or cfg.model)
    if cfg.qlora:
        if not torch.cuda.is_available():
            raise UserError("--qlora needs a CUDA GPU (bitsandbytes 4-bit); use --lora on the CPU")
        require("bitsandbytes", "--qlora")
        kw["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    try:
        model = getattr(transformers, auto_class).from_pretrained(source, dtype=torch.float32, **kw, **kwargs)
    except (ValueError, KeyError) as e:
        what = "a reward model backbone" if "Sequence" in auto_class else "a causal LM"
        raise UserError(f"--model {cfg.model}: cannot be loaded as {what} ({str(e).splitlines()[0]}); use a causal "
                        "LM checkpoint (OPT, LLaMA, Qwen, SmolLM2...)") from e
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
        task = "SEQ_CLS" if "Sequence" in auto_class else "CAUSAL_LM"
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                 target_modules=targets, task_type=task))
    return model


def precision_flags(precision: str) -> dict[str, bool]:
    import torch

    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise UserError("--precision fp16 needs a GPU; on the CPU use bf16 (autocast; fast where the CPU has "
                        "AVX512-BF16 or AMX) or fp32")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def checkpointing_flag(on: bool) -> dict:
    """Activation (gradient) checkpointing under its current TrainingArguments name: transformers
    renamed gradient_checkpointing to activation_checkpointing during 5.x."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": on}


def training_args(cfg: TrainSettings, epochs: float, learning_rate: float, accumulation: int, **extra: Any):
    """The ``TrainingArguments`` of a run: every trainer's schedule, checkpoints, logging, precision
    and DeepSpeed come from its settings here; ``extra`` adds what one trainer needs."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(cfg.output_dir), num_train_epochs=epochs, learning_rate=learning_rate,
        lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.per_device_batch, gradient_accumulation_steps=accumulation,
        max_steps=cfg.max_steps or -1, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed,
        **checkpointing_flag(cfg.gradient_checkpointing), report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=cfg.quiet, save_only_model=False,
        deepspeed=cfg.deepspeed,
        # On a machine without CUDA, say so: accelerate then runs torchrun/accelerate-launched
        # processes as multi-CPU DDP (gloo) instead of as independent copies.
        use_cpu=not torch.cuda.is_available(), **precision_flags(cfg.precision), **extra)


def quiet_trainer(trainer, quiet: bool):
    """--quiet: no per-step log lines on stdout (the log still goes to gpt4llm_train.json)."""
    if quiet:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    return trainer


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


def train(trainer, cfg: TrainSettings):
    """``trainer.train``, resumed from the last complete checkpoint with --resume; out of memory is
    one line saying what to change."""
    import torch

    last = last_checkpoint(cfg.output_dir) if cfg.resume else None
    try:
        return trainer.train(resume_from_checkpoint=last)
    except torch.OutOfMemoryError as e:
        raise UserError("out of memory: try --lora, a smaller --per-device-batch (the effective --batch-size "
                        "stays), --gradient-checkpointing or a shorter --max-length") from e


def save_model(cfg: TrainSettings, trainer, tok, template, merge: bool) -> Any:
    """The final checkpoint at the output root: weights (merged LoRA when ``merge``), tokenizer (for
    the Alpaca template, a chat template rendering it), generation config (EOS, pad) and the template
    object, so transformers, vLLM/SGLang and ``gpt4llm answer`` load and prompt it the same way."""
    model = trainer.model
    if (cfg.lora or cfg.qlora) and merge:
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        if template.jinja():
            tok.chat_template = template.jinja()
        if getattr(model, "generation_config", None) is not None and tok.eos_token_id is not None:
            model.generation_config.eos_token_id = tok.eos_token_id
            model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(cfg.output_dir)
        tok.save_pretrained(cfg.output_dir)
        template.save(cfg.output_dir)
    return model
