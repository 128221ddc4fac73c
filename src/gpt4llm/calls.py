"""Run model calls through the journal (DESIGN.md principle 3), with progress, cost and budget.

``run_calls`` keys every request, skips keys the journal already has as ``ok``, sends the rest
to the backend, and commits each result (with its cost) as it arrives. Stages then build their
outputs from the returned journal entries, so a re-run after a crash makes no call twice and
writes the same output. ``plan_calls`` is the dry run: the same bookkeeping, no call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from gpt4llm.backends.base import Backend, Request, RunContext
from gpt4llm.backends.journal import Entry, Journal, call_key
from gpt4llm.backends.pricing import Budget, Prices, estimate_prompt_tokens
from gpt4llm.errors import UserError


@dataclass
class CallStats:
    """What a run of calls did. Counts are of unique calls; tokens and cost are those of all ok
    calls (cached ones included), i.e. what the output cost."""

    requested: int = 0
    cached: int = 0
    called: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    new_cost_usd: float | None = 0.0
    budget_reached: bool = False
    max_usd: float | None = None
    seconds: float = 0.0
    entries: dict[str, Entry] = field(default_factory=dict)

    def merge(self, other: "CallStats | None") -> "CallStats":
        """The stats of two runs of calls together (a stage's rounds: first asks, then re-asks)."""
        if other is None:
            return self
        out = CallStats(max_usd=self.max_usd if self.max_usd is not None else other.max_usd)
        for f in ("requested", "cached", "called", "ok", "failed", "skipped", "prompt_tokens",
                  "completion_tokens", "seconds"):
            setattr(out, f, getattr(self, f) + getattr(other, f))
        for f in ("cost_usd", "new_cost_usd"):
            a, b = getattr(self, f), getattr(other, f)
            setattr(out, f, None if a is None or b is None else a + b)
        out.budget_reached = self.budget_reached or other.budget_reached
        out.entries = {**self.entries, **other.entries}
        return out


@dataclass
class Plan:
    """A dry run: what the calls would be, and what they would cost."""

    requests: int
    cached: int
    pending: int
    est_prompt_tokens: int
    max_completion_tokens: int
    prices: Prices
    est_minutes: float | None
    limits: str

    @property
    def est_cost_usd(self) -> tuple[float, float] | None:
        """(input cost, input + worst-case output cost), or None when the price is unknown."""
        if not self.prices.known:
            return None
        low = self.prices.cost(self.est_prompt_tokens, 0)
        return low, low + self.prices.cost(0, self.max_completion_tokens)


def assign_keys(backend: Backend, requests: list[Request]) -> None:
    for r in requests:
        r.key = call_key(backend.kind, backend.model, r.payload())


def stderr():
    """The console progress is drawn on (rich is imported on first use: ``--help`` stays fast)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


_console = None


def progress_bar(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = stderr()
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"), TextColumn("[magenta]{task.fields[tokens]} tok"),
        TextColumn("[green]{task.fields[cost]}"), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal, transient=False)


def _split(backend: Backend, journal: Journal, requests: list[Request]) -> tuple[dict[str, Entry], dict[str, Request]]:
    """(ok entries already journaled, unique pending requests by key)."""
    assign_keys(backend, requests)
    done = {k: e for k, e in journal.lookup(r.key for r in requests).items() if e.ok}
    pending: dict[str, Request] = {}
    for r in requests:
        if r.key not in done:
            pending.setdefault(r.key, r)  # the same call asked twice is made once
    return done, pending


def _prices(backend: Backend, prices: Prices | None) -> Prices:
    prices = prices or Prices.for_model(backend.kind, backend.model)
    factor = backend.price_factor
    if factor != 1.0 and prices.known:
        prices = Prices(prices.usd_in * factor, prices.usd_out * factor, f"{prices.source} x{factor}")
    return prices


def _money(x: float | None) -> str:
    return "" if x is None else f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


async def _run(backend: Backend, journal: Journal, requests: list[Request], label: str, quiet: bool,
               prices: Prices, max_usd: float | None, budget: Budget | None) -> CallStats:
    t0 = time.perf_counter()
    stats = CallStats(requested=len(requests), max_usd=max_usd)
    stats.entries, pending = _split(backend, journal, requests)
    unique = len(stats.entries) + len(pending)
    stats.cached = len(stats.entries)
    if budget is None and max_usd is not None:
        budget = Budget(max_usd)
    if budget is not None:
        if not prices.known:
            raise UserError(f"--max-usd: no price is known for {backend.model}; give --price-in and "
                            "--price-out (USD per 1M tokens) or --prices FILE")
        stats.max_usd = budget.max_usd
        budget.spent += sum(e.cost_usd or 0.0 for e in stats.entries.values())  # paid by earlier runs
    ctx = RunContext(journal=journal, prices=prices, budget=budget, console=stderr(), quiet=quiet)
    tokens = sum(e.prompt_tokens + e.completion_tokens for e in stats.entries.values())
    cost = sum(e.cost_usd or 0.0 for e in stats.entries.values())
    with progress_bar(quiet) as bar:
        task = bar.add_task(label, total=unique, completed=stats.cached, rate="", tokens=f"{tokens:,}",
                            cost=_money(cost) if prices.known and cost else "")
        started = time.perf_counter()
        try:
            async for req, res in backend.run(list(pending.values()), ctx):
                if res.skipped:
                    stats.skipped += 1
                    continue
                journal.record(req.key, backend.kind, backend.model, req.payload(), text=res.text,
                               finish_reason=res.finish_reason, prompt_tokens=res.prompt_tokens,
                               completion_tokens=res.completion_tokens, cost_usd=res.cost_usd,
                               latency_s=res.latency_s, error=res.error, model_returned=res.model_returned,
                               system_fingerprint=res.system_fingerprint)
                stats.called += 1
                tokens += res.prompt_tokens + res.completion_tokens
                cost += res.cost_usd or 0.0
                rate = stats.called / max(time.perf_counter() - started, 1e-9)
                bar.update(task, advance=1, tokens=f"{tokens:,}", rate=f"{rate:.2f} req/s",
                           cost=_money(cost) if prices.known and cost else "")
        finally:
            await backend.aclose()
    stats.entries.update(journal.lookup(pending))
    done = [e for e in stats.entries.values() if e.ok]
    stats.ok = len(done)
    stats.failed = sum(1 for e in stats.entries.values() if not e.ok)
    stats.prompt_tokens = sum(e.prompt_tokens for e in done)
    stats.completion_tokens = sum(e.completion_tokens for e in done)
    if prices.known:
        stats.cost_usd = sum(e.cost_usd or 0.0 for e in done)
        stats.new_cost_usd = sum(e.cost_usd or 0.0 for k, e in stats.entries.items() if k in pending)
    else:
        stats.cost_usd = stats.new_cost_usd = None
    stats.budget_reached = budget is not None and budget.reached
    stats.seconds = time.perf_counter() - t0
    return stats


def run_calls(backend: Backend, journal: Journal, requests: list[Request], label: str = "calls",
              quiet: bool = False, *, prices: Prices | None = None, max_usd: float | None = None,
              budget: Budget | None = None) -> CallStats:
    """Make every request that the journal does not hold as ``ok``; return all entries.

    With ``max_usd`` (or a ``budget`` shared by several runs of one job, e.g. re-ask rounds), no
    request is sent that could take the job's total cost (journaled calls included) past the cap;
    ``stats.budget_reached`` tells the stage to stop with exit code 3.
    """
    return asyncio.run(_run(backend, journal, requests, label, quiet, _prices(backend, prices), max_usd, budget))


def plan_calls(backend: Backend, journal: Journal, requests: list[Request], *, prices: Prices | None = None,
               rpm: float | None = None, tpm: float | None = None) -> Plan:
    """The dry run: requests, estimated tokens, cost and time; no call is made."""
    done, pending = _split(backend, journal, requests)
    prompt = sum(estimate_prompt_tokens(r.messages, r.prompt) for r in pending.values())
    completion = sum(r.params.max_tokens for r in pending.values())
    minutes, limits = None, "no --rpm/--tpm given"
    bounds = []
    if rpm:
        bounds.append(len(pending) / rpm)
    if tpm:
        bounds.append((prompt + completion) / tpm)
    if bounds:
        minutes = max(bounds)
        limits = ", ".join(x for x in (f"--rpm {rpm:g}" if rpm else "", f"--tpm {tpm:g}" if tpm else "") if x)
    return Plan(requests=len(done) + len(pending), cached=len(done), pending=len(pending),
                est_prompt_tokens=prompt, max_completion_tokens=completion, prices=_prices(backend, prices),
                est_minutes=minutes, limits=limits)
