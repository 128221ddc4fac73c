"""Run model calls through the journal (DESIGN.md principle 3), with a progress bar.

``run_calls`` keys every request, skips keys the journal already has as ``ok``, sends the rest
to the backend, and commits each result as it arrives. Stages then build their outputs from
the returned journal entries, so a re-run after a crash makes no call twice and writes the
same output.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gpt4llm.backends.base import Backend, Request
from gpt4llm.backends.journal import Entry, Journal, call_key

stderr = Console(stderr=True)


@dataclass
class CallStats:
    """What a run of calls did. Counts are of unique calls; tokens are those of all ok calls
    (cached ones included), i.e. what the output cost."""

    requested: int = 0
    cached: int = 0
    called: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    entries: dict[str, Entry] = field(default_factory=dict)


def assign_keys(backend: Backend, requests: list[Request]) -> None:
    for r in requests:
        r.key = call_key(backend.kind, backend.model, r.payload())


def progress_bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"), TextColumn("[magenta]{task.fields[tokens]} tok"),
        TextColumn("ETA"), TimeRemainingColumn(), console=stderr, disable=quiet or not stderr.is_terminal, transient=False)


async def _run(backend: Backend, journal: Journal, requests: list[Request], label: str,
               quiet: bool) -> CallStats:
    t0 = time.perf_counter()
    backend.journal = journal
    assign_keys(backend, requests)
    stats = CallStats(requested=len(requests))
    stats.entries = {k: e for k, e in journal.lookup(r.key for r in requests).items() if e.ok}
    pending: dict[str, Request] = {}
    for r in requests:
        if r.key not in stats.entries:
            pending.setdefault(r.key, r)  # the same call asked twice is made once
    unique = len(set(r.key for r in requests))
    stats.cached = unique - len(pending)
    tokens = sum(e.prompt_tokens + e.completion_tokens for e in stats.entries.values())
    with progress_bar(quiet) as bar:
        task = bar.add_task(label, total=unique, completed=stats.cached, rate="", tokens=tokens)
        started = time.perf_counter()
        try:
            async for req, res in backend.run(list(pending.values())):
                journal.record(req.key, backend.kind, backend.model, req.payload(), text=res.text,
                               finish_reason=res.finish_reason, prompt_tokens=res.prompt_tokens,
                               completion_tokens=res.completion_tokens, latency_s=res.latency_s,
                               error=res.error)
                stats.called += 1
                tokens += res.prompt_tokens + res.completion_tokens
                rate = stats.called / max(time.perf_counter() - started, 1e-9)
                bar.update(task, advance=1, tokens=f"{tokens:,}", rate=f"{rate:.2f} req/s")
        finally:
            await backend.aclose()
    stats.entries.update(journal.lookup(pending))
    done = [e for e in stats.entries.values() if e.ok]
    stats.ok = len(done)
    stats.prompt_tokens = sum(e.prompt_tokens for e in done)
    stats.completion_tokens = sum(e.completion_tokens for e in done)
    stats.failed = unique - stats.ok
    stats.seconds = time.perf_counter() - t0
    return stats


def run_calls(backend: Backend, journal: Journal, requests: list[Request], label: str = "calls",
              quiet: bool = False) -> CallStats:
    """Make every request that the journal does not hold as ``ok``; return all entries."""
    return asyncio.run(_run(backend, journal, requests, label, quiet))
