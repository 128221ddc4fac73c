"""Backends by short name, from a plain dict (DESIGN.md principle 4).

A model is named ``BACKEND:NAME``. Heavy libraries are imported only by the backend that
needs them, so ``gpt4llm --help`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gpt4llm.backends.base import Backend
from gpt4llm.errors import UserError

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
    if options.pop("batch_api", False):
        if spec.backend != "openai":
            raise UserError(f"--batch-api works with openai: models, not {spec}")
        target = "gpt4llm.backends.batch:OpenAIBatchBackend"
    module, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = cls.OPTIONS
    return cls(spec.name, **{k: v for k, v in options.items() if k in accepted and v is not None})
