"""Backends by short name, from a plain dict (DESIGN.md principle 4).

A model is named ``BACKEND:NAME``. Heavy libraries are imported only by the backend that
needs them, so ``gpt4llm --help`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from gpt4llm.backends.base import Backend
from gpt4llm.errors import UserError
from gpt4llm.settings import PER_MINUTE, Opt, Settings

EMBEDDED = "smollm2-135m-instruct"
DEFAULT_MODEL = f"local:{EMBEDDED}"

# short name -> "module:class"
BACKENDS = {
    "local": "gpt4llm.backends.local:LocalBackend",
    "openai": "gpt4llm.backends.openai:OpenAIBackend",
}

FORMS = (
    f"local:{EMBEDDED} (the embedded model), local:PATH (HF checkpoint dir or .gguf file), "
    "local:ORG/NAME (Hugging Face hub), openai:MODEL (any OpenAI-compatible endpoint)"
)


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}"


def parse_model(spec: str, flag: str = "--model") -> ModelSpec:
    """``BACKEND:NAME`` -> ModelSpec; anything else is a UserError listing the valid forms."""
    backend, sep, name = (spec or "").partition(":")
    if not sep or not name or backend not in BACKENDS:
        raise UserError(f"{flag} {spec!r}: unknown model form; valid forms: {FORMS}")
    return ModelSpec(backend, name)


def create_backend(spec: str | ModelSpec, flag: str = "--model", **options: Any) -> Backend:
    """Build the backend for a model spec; options a backend does not take are ignored."""
    if isinstance(spec, str):
        spec = parse_model(spec, flag)
    target = BACKENDS[spec.backend]
    engine = options.pop("engine", "transformers")
    if spec.backend == "local" and engine != "transformers":
        target = "gpt4llm.backends.engines:EngineBackend"
        options["engine"] = engine
    if options.pop("batch_api", False):
        if spec.backend != "openai":
            raise UserError(f"--batch-api works with openai: models, not {spec}")
        target = "gpt4llm.backends.batch:OpenAIBatchBackend"
    module, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = cls.OPTIONS
    return cls(spec.name, **{k: v for k, v in options.items() if k in accepted and v is not None})


class BackendSettings(Settings):
    """How models are called: the same settings for every command that calls one (flags), and the
    pipeline file's ``backend:`` section."""

    batch_size: int = Field(16, ge=1)
    """local: prompts per batch (16-32 is fastest on a CPU; see README)."""
    concurrency: int = Field(16, ge=1)
    """openai: requests in flight."""
    rpm: PER_MINUTE = None
    """openai: max requests per minute (client-side token bucket)."""
    tpm: PER_MINUTE = None
    """openai: max tokens per minute (prompt estimate + max_tokens)."""
    base_url: list[str] | None = None
    """openai: endpoint (default $OPENAI_BASE_URL or OpenAI); give it several times (YAML: a list) for several servers, balanced with failover."""
    api_version: str | None = None
    """openai: Azure OpenAI API version; the model is the deployment name."""
    timeout: float = Field(600.0, gt=0)
    """openai: seconds per request before it is retried."""
    max_retries: int = Field(8, ge=0)
    """openai: retries of 429/5xx/timeouts/dropped connections."""
    retry_backoff: float = Field(1.0, ge=0)
    """openai: first backoff in seconds (doubles, full jitter)."""
    batch_api: bool = False
    """openai: use the Batch API (half price, results within 24 h; resumable)."""
    batch_fallback: bool = False
    """Batch API: send what it failed synchronously."""
    poll_interval: float = Field(30.0, gt=0)
    """Batch API: seconds between polls."""
    price_in: float | None = Field(None, ge=0)
    """USD per 1M input tokens (overrides the price table)."""
    price_out: float | None = Field(None, ge=0)
    """USD per 1M output tokens (overrides the price table)."""
    prices: Path | None = None
    """YAML price table: MODEL: [usd_in_per_1m, usd_out_per_1m]."""
    engine: Literal["transformers", "vllm", "sglang", "command"] = "transformers"
    """local: models: transformers in this process (default), or a server gpt4llm starts: vllm, sglang, or --engine-command."""
    engine_command: str | None = None
    """--engine command: the server's command, with {model}, {local_model}, {host}, {port}, {tensor_parallel}, {gpus}."""
    replicas: int = Field(1, ge=1)
    """Engine: servers to start for the model, balanced with failover."""
    tensor_parallel: int = Field(1, ge=1)
    """Engine: GPUs per replica (vLLM --tensor-parallel-size, SGLang --tp-size)."""
    gpus: str | None = None
    """Engine: GPU ids to use, e.g. 0,1,2,3 (replica r gets the r-th group of --tensor-parallel ids)."""
    engine_timeout: float = Field(900.0, gt=0)
    """Engine: seconds to wait for a server to answer /v1/models."""
    engine_log_dir: Annotated[Path | None, Opt(pipeline=True)] = None
    """Engine: where each server's log goes (default: engines/ beside the output)."""

    @field_validator("base_url", mode="before")
    @classmethod
    def _urls(cls, v):
        return [v] if isinstance(v, str) else v

    def options(self, quiet: bool = False, batch: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``create_backend``. ``batch``: whether this stage may use the Batch
        API when it is on (bulk stages: generate, translate, compare)."""
        opts = self.model_dump(exclude={"batch_api", "batch_fallback", "poll_interval", "price_in", "price_out",
                                        "prices", "engine_log_dir"})
        opts["log_dir"] = self.engine_log_dir
        if self.batch_api and batch:
            opts.update(batch_api=True, fallback=self.batch_fallback, poll_interval=self.poll_interval, quiet=quiet)
        return opts

    def prices_for(self, model: str):
        """The prices of ``model``: the flags, else the table (``--prices`` or the bundled one)."""
        from gpt4llm.backends.pricing import Prices

        spec = parse_model(model)
        return Prices.for_model(spec.backend, spec.name, self.price_in, self.price_out, self.prices)
