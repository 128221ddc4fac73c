"""Typed records of every file format gpt4llm reads or writes (DESIGN.md principle 2).

Field names follow the formats people already have (Alpaca, GPT-4-LLM, FastChat, TRL);
what gpt4llm adds lives under ``meta``. Reading validates: a bad record is an error that
names file:line (see ``io.read_records``).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=False)]


def record_id(instruction: str, input: str = "") -> str:
    """Stable id of an instruction: the same text always gives the same id, on any machine."""
    blob = json.dumps([instruction, input or ""], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class AlpacaRecord(BaseModel):
    """Alpaca instruction data: ``instruction``, optional ``input`` and ``output``.

    Unknown fields (``label`` in Unnatural Instructions, ``id``, ``meta``) are kept.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    instruction: NonEmptyStr
    input: str = ""
    output: str | None = None
    id: str | None = None

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("instruction is blank")
        return v

    @field_validator("input", mode="before")
    @classmethod
    def _null_input(cls, v: Any) -> Any:
        # Several public copies of Alpaca write a missing input as null.
        return "" if v is None else v

    @cached_property
    def key(self) -> str:
        """The record's id: the one it carries, else the hash of instruction + input."""
        return self.id or record_id(self.instruction, self.input)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerationMeta(BaseModel):
    """Provenance of one generated answer."""

    model: str
    backend: str
    params: dict[str, Any]
    usage: Usage
    finish_reason: str | None
    latency_s: float
    created: str = Field(description="ISO 8601 UTC time the answer was produced")
    language: str | None = None
    cost_usd: float | None = None


class GeneratedRecord(BaseModel):
    """An Alpaca record answered by a teacher: Alpaca fields + ``id`` + ``meta``."""

    instruction: str
    input: str
    output: str
    id: str
    meta: GenerationMeta


class ErrorRecord(BaseModel):
    """A call that still failed after retries; written to ``<output>.errors.jsonl``."""

    id: str
    instruction: str
    input: str = ""
    error: str
    attempts: int


class Question(BaseModel):
    """One benchmark question, from any of the formats ``eval.questions`` reads."""

    question_id: int | str
    instruction: str
    input: str = ""
    category: str | None = None
    reference: str | None = None


class FastChatAnswer(BaseModel):
    """FastChat's answer format (``question_id, answer_id, model_id, text``) plus our ``meta``."""

    question_id: int | str
    answer_id: str
    model_id: str
    text: str
    meta: dict[str, Any] = {}
