"""The one small backend interface (DESIGN.md principle 4).

A backend takes a list of ``Request``s and a ``RunContext`` and yields a ``Result`` for each, in any
order, as they finish. Scheduling (batching for ``local``, concurrent HTTP for ``openai``) is the
backend's business; journaling, progress and resume are the caller's (``gpt4llm.calls``), which
hands the backend what it may use in the context: the journal (the Batch API keeps its batch ids
there), the prices, the budget and the console that draws progress.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, AsyncIterator

from gpt4llm.errors import UserError

if TYPE_CHECKING:
    from gpt4llm.backends.journal import Journal
    from gpt4llm.backends.pricing import Budget, Prices


@dataclass(frozen=True)
class GenParams:
    """Decoding parameters. Defaults are the paper's (PAPER.md section 1)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The parameters that change the output (part of the journal key)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass
class Request:
    """One model call: chat ``messages``, or a raw ``prompt`` already formatted by a template."""

    params: GenParams
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    sample: int = 0
    key: str = ""
    tag: Any = field(default=None, compare=False)  # the caller's handle, e.g. a record id
    extra: dict[str, Any] | None = field(default=None, compare=False)
    """Sent with the request but not part of its identity, e.g. add_special_tokens for a raw prompt."""

    def payload(self) -> dict[str, Any]:
        """What the journal stores and hashes: the input, the parameters, the sample index."""
        body: dict[str, Any] = {"messages": self.messages} if self.messages is not None else {"prompt": self.prompt}
        return {**body, "params": self.params.as_dict(), "sample": self.sample}


@dataclass
class Result:
    """What came back: ``text`` on success, ``error`` (the reason) on failure."""

    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    cost_usd: float | None = None
    skipped: str | None = None  # not sent at all (e.g. "budget"): nothing to journal
    model_returned: str | None = None
    """The model id the endpoint says answered (OpenAI's ``model``: "gpt-4o-2024-08-06" for "gpt-4o")."""
    system_fingerprint: str | None = None
    """The endpoint's ``system_fingerprint`` (its serving configuration); local: a hash of the weights."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


@dataclass
class RunContext:
    """What one run of calls gives its backend. Everything is optional: a backend run outside a
    stage (a benchmark, ``serve``) gets an empty context."""

    journal: "Journal | None" = None
    """The run's journal; the Batch API keeps its batch ids in it (``Journal.batches``)."""
    prices: "Prices | None" = None
    """USD per 1M tokens, already at this backend's price (the Batch API's half price)."""
    budget: "Budget | None" = None
    """The job's cap (``--max-usd``): reserve a request's worst case before sending it."""
    console: Any = None
    """The rich console the caller draws progress on (a backend nests its own bars in it)."""
    quiet: bool = False


class FatalBackendError(UserError):
    """The backend cannot work at all (bad key, unreachable endpoint): stop the run."""


class Backend(abc.ABC):
    """A model to call. ``kind`` is the short backend name, ``model`` the model's name."""

    kind: str = ""
    price_factor: float = 1.0
    """What this backend bills of the list price (the Batch API: 0.5)."""

    def __init__(self, model: str):
        self.model = model

    def close(self) -> None:
        """Stop what the backend started (an engine's servers); called when the stage ends."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def run(self, requests: list[Request], ctx: RunContext) -> AsyncIterator[tuple[Request, Result]]:
        """Yield ``(request, result)`` for every request, in completion order."""

    async def aclose(self) -> None:
        """Release connections or memory."""

    def describe(self) -> dict[str, Any]:
        """Provenance: backend, model and endpoint, never a key."""
        return {"backend": self.kind, "model": self.model}
