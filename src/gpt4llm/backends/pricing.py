"""Prices and the budget cap.

``Prices`` turns a call's usage into dollars (USD per 1M tokens, input and output separately,
the unit providers publish). ``Budget`` makes ``--max-usd`` a hard cap: before a request is
sent it reserves the request's worst case (estimated prompt tokens at the input price plus
``max_tokens`` at the output price), and refuses when spent + reserved + that would pass the
cap; after the response the reservation is replaced by the real cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gpt4llm.errors import UserError

BATCH_DISCOUNT = 0.5  # OpenAI's Batch API bills half the synchronous price


def load_price_table(path: str | Path | None = None) -> dict[str, tuple[float, float]]:
    """The bundled table, or a YAML file of ``model: [usd_in_per_1m, usd_out_per_1m]``."""
    import yaml

    text = Path(path).read_text(encoding="utf-8") if path else \
        resources.files("gpt4llm").joinpath("prices.yaml").read_text(encoding="utf-8")
    where = str(path) if path else "prices.yaml"
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{where}: not valid YAML ({e})") from e
    table = {}
    for model, value in raw.items():
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and v >= 0 for v in value)):
            raise UserError(f"{where}: '{model}' must be [usd_in_per_1m, usd_out_per_1m], e.g. [2.5, 10.0]")
        table[str(model)] = (float(value[0]), float(value[1]))
    return table


@dataclass(frozen=True)
class Prices:
    """USD per 1M input and output tokens; ``None`` when the price is unknown."""

    usd_in: float | None
    usd_out: float | None
    source: str = ""

    @property
    def known(self) -> bool:
        return self.usd_in is not None and self.usd_out is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if not self.known:
            return None
        return (prompt_tokens * self.usd_in + completion_tokens * self.usd_out) / 1e6

    @classmethod
    def for_model(cls, backend: str, model: str, price_in: float | None = None, price_out: float | None = None,
                  table_path: str | Path | None = None) -> "Prices":
        """Flags first, then the table (longest matching prefix); local models are free."""
        if price_in is not None or price_out is not None:
            if price_in is None or price_out is None:
                raise UserError("--price-in and --price-out go together (USD per 1M tokens)")
            if price_in < 0 or price_out < 0:
                raise UserError("--price-in/--price-out must be >= 0 (USD per 1M tokens)")
            return cls(price_in, price_out, "flags")
        if backend.startswith("local"):  # in this process, or an engine gpt4llm runs
            return cls(0.0, 0.0, "local")
        table = load_price_table(table_path)
        matches = [m for m in table if model == m or model.startswith(m + "-")]
        if not matches:
            return cls(None, None, "unknown")
        best = max(matches, key=len)
        return cls(*table[best], source=f"table:{best}")


def estimate_tokens(text: str) -> int:
    """Prompt tokens, estimated: about 4 characters per token for English under OpenAI's BPEs,
    rounded up. Used only for rate limits, budget reservations and dry runs, never billed."""
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(messages: list[dict] | None, prompt: str | None) -> int:
    if messages is None:
        return estimate_tokens(prompt or "")
    return sum(estimate_tokens(m.get("content") or "") + 4 for m in messages) + 3  # per-message framing


def max_prompt_tokens(messages: list[dict] | None, prompt: str | None) -> int:
    """An upper bound of the prompt's tokens, for budget reservations: a byte-level BPE token is
    at least one byte of UTF-8, so tokens <= bytes, plus generous chat framing per message."""
    if messages is None:
        return len((prompt or "").encode("utf-8")) + 16
    return sum(len((m.get("content") or "").encode("utf-8")) + 16 for m in messages) + 16


class Budget:
    """A hard cap in USD over the whole job (journaled cost of earlier runs included).

    ``acquire`` reserves a request's worst case before it is sent. When the reservation does not
    fit while other requests are in flight, it waits for them to settle (their real cost is
    usually far below their worst case) and tries again; it refuses, and the job stops, only when
    nothing is in flight and the worst case still does not fit. ``release`` replaces the
    reservation by the real cost. Since a request never costs more than its worst case, spent +
    reserved never passes the cap, in any interleaving. ``reserve``/``settle`` are the same
    bookkeeping without waiting (the Batch API reserves a whole file before creating a batch).
    """

    def __init__(self, max_usd: float, spent: float = 0.0):
        if not (max_usd > 0 and math.isfinite(max_usd)):
            raise UserError(f"--max-usd {max_usd}: must be a positive number of dollars")
        self.max_usd = max_usd
        self.spent = spent
        self.reserved = 0.0
        self.in_flight = 0
        self.refused = 0
        self.stopped = False
        self._cond = None
        self._loop = None

    def reserve(self, worst_case: float) -> bool:
        if self.stopped or self.spent + self.reserved + worst_case > self.max_usd:
            self.refused += 1
            return False
        self.reserved += worst_case
        return True

    def settle(self, reserved: float, actual: float | None) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual if actual is not None else reserved

    def _condition(self):
        import asyncio

        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a Budget may outlive one event loop (re-ask rounds)
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    async def acquire(self, worst_case: float) -> bool:
        cond = self._condition()
        async with cond:
            while True:
                if self.stopped:
                    self.refused += 1
                    return False
                if self.spent + self.reserved + worst_case <= self.max_usd:
                    self.reserved += worst_case
                    self.in_flight += 1
                    return True
                if self.in_flight == 0:  # nothing will free money: this is where the job stops
                    self.stopped = True
                    self.refused += 1
                    cond.notify_all()
                    return False
                await cond.wait()

    async def release(self, reserved: float, actual: float | None) -> None:
        cond = self._condition()
        async with cond:
            self.settle(reserved, actual)
            self.in_flight -= 1
            cond.notify_all()

    @property
    def reached(self) -> bool:
        return self.refused > 0
