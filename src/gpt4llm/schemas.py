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
    turns: list[str] | None = None
    """FastChat llm_judge questions (MT-Bench): every turn; ``instruction`` is the first."""


class FastChatAnswer(BaseModel):
    """FastChat's answer format (``question_id, answer_id, model_id, text``) plus our ``meta``."""

    question_id: int | str
    answer_id: str
    model_id: str
    text: str
    meta: dict[str, Any] = {}


class ScoredResponse(BaseModel):
    """One of a prompt's K responses with the judge's 1-10 score and its source model."""

    response: str
    score: float
    source: str = ""


class Comparison(BaseModel):
    """GPT-4-LLM comparison v2 (``comparison_data_v2.json``): ``user_input`` is the instruction already
    in the Alpaca template. ``compare`` adds ``id`` and ``meta`` (judge, rationales, failures)."""

    user_input: str
    responses_and_scores: list[ScoredResponse]
    id: str | None = None
    meta: dict[str, Any] | None = None


class Review(BaseModel):
    """FastChat's review format (``review_id, question_id, answer1_id, answer2_id, reviewer_id,
    metadata, text, score``); ``score`` [-1, -1] is FastChat's mark of a review without scores.
    ``eval judge`` adds ``meta`` (model, order, parse status and rule, follow-ups)."""

    review_id: str
    question_id: int | str
    answer1_id: str | None = None
    answer2_id: str | None = None
    reviewer_id: str | int | None = None
    metadata: dict[str, Any] = {}
    text: str = ""
    score: list[float]
    meta: dict[str, Any] | None = None
