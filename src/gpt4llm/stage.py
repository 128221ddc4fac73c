"""What every model stage shares.

``ask_until_parsed`` is the one loop that asks a judge and reads its answer (``compare`` and
``eval judge``): every item is asked once; an answer that no rule can read is followed up in the
same conversation (the judge's own reply kept, then one short turn asking only for the score in
the required format), up to ``max_reasks`` times. A follow-up is a new request, not the same one
again: a judge at temperature 0.2 asked the same thing answers the same way. Everything goes
through the journal, so a re-run makes no call twice, and all rounds share one budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gpt4llm.backends.base import Backend, GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Budget, Prices
from gpt4llm.calls import CallStats, run_calls


@dataclass
class Asked:
    """What came of one item. ``status``: ok, parse_failed (no rule read any answer, the texts
    are kept), call_failed (a call still failed after retries; a re-run retries it) or not_run
    (the budget ran out first)."""

    status: str
    value: Any = None
    rule: str | None = None
    """Which rule read the value; "followup" when a follow-up's answer was read."""
    text: str = ""
    """The judge's first reply (its review or rating)."""
    followups: list[str] = field(default_factory=list)
    """The judge's replies to the follow-ups, in order."""
    reason: str = ""
    attempts: int = 0
    followup_cost_usd: float | None = 0.0
    """What the follow-ups cost (None when the price is unknown)."""


@dataclass
class AskStats:
    calls: CallStats | None
    """All calls of all rounds."""
    reasks: int = 0
    """Follow-up requests made or read from the journal."""
    reask_cost_usd: float | None = 0.0
    rescued: int = 0
    """Items a follow-up read when the first answer could not be read."""


def ask_until_parsed(backend: Backend, journal: Journal, items: list[tuple[Any, list[dict]]],
                     parse: Callable[[str], tuple[Any, str]], followup: str, *, params: GenParams,
                     max_reasks: int, label: str, quiet: bool = False, prices: Prices | None = None,
                     max_usd: float | None = None) -> tuple[dict[Any, Asked], AskStats]:
    """Ask each ``(tag, messages)`` item; ``parse(text)`` gives ``(value, rule)`` or ``(None, reason)``."""
    budget = Budget(max_usd) if max_usd is not None else None
    conversation = {tag: list(messages) for tag, messages in items}
    results: dict[Any, Asked] = {tag: Asked("not_run", reason="not run (budget reached first)") for tag, _ in items}
    out = AskStats(None)
    pending = [tag for tag, _ in items]
    for attempt in range(max_reasks + 1):
        if not pending:
            break
        reqs = [Request(params=params, messages=conversation[tag], tag=tag) for tag in pending]
        stats = run_calls(backend, journal, reqs, label=label if attempt == 0 else f"{label} (follow-up {attempt})",
                          quiet=quiet, prices=prices, budget=budget)
        out.calls = stats if out.calls is None else out.calls.merge(stats)
        retry = []
        for r in reqs:
            tag, a = r.tag, results[r.tag]
            e = stats.entries.get(r.key)
            if attempt > 0 and e is not None:
                out.reasks += 1
                if stats.cost_usd is None:
                    out.reask_cost_usd = a.followup_cost_usd = None
                else:
                    if out.reask_cost_usd is not None:
                        out.reask_cost_usd += e.cost_usd or 0.0
                    if a.followup_cost_usd is not None:
                        a.followup_cost_usd += e.cost_usd or 0.0
            if e is None:
                continue  # not sent: the budget ran out (status stays as it is)
            if not e.ok:
                a.status, a.reason = "call_failed", e.error or "failed"
                continue
            if attempt == 0:
                a.text = e.text
            else:
                a.followups.append(e.text)
            a.attempts = attempt + 1
            value, why = parse(e.text)
            if value is not None:
                a.status, a.value, a.rule, a.reason = "ok", value, why if attempt == 0 else "followup", ""
                out.rescued += attempt > 0
                continue
            a.status, a.reason = "parse_failed", why
            conversation[tag] = conversation[tag] + [{"role": "assistant", "content": e.text},
                                                     {"role": "user", "content": followup}]
            retry.append(tag)
        pending = retry
        if stats.budget_reached:
            break
    return results, out
