"""What every stage shares: where its files go, its inputs, opening its backend, its errors file,
and the loop that asks a judge until its answer can be read.

``ask_until_parsed`` is the one loop that asks a judge and reads its answer (``compare`` and
``eval judge``): every item is asked once; an answer that no rule can read is followed up in the
same conversation (the judge's own reply kept, then one short turn asking only for the score in
the required format), up to ``max_reasks`` times. A follow-up is a new request, not the same one
again: a judge at temperature 0.2 asked the same thing answers the same way. Everything goes
through the journal, so a re-run makes no call twice, and all rounds share one budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable

from gpt4llm import io
from gpt4llm.backends import BackendSettings, create_backend
from gpt4llm.backends.base import Backend, GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Budget, Prices
from gpt4llm.calls import CallStats, run_calls
from gpt4llm.errors import UserError
from gpt4llm.schemas import AlpacaRecord
from gpt4llm.settings import Opt, Settings
from gpt4llm.shard import parse_shard

SEEDS = "seeds"  # an input of "seeds": the 40 instructions bundled with gpt4llm


class ModelCallSettings(Settings):
    """What every command that calls a model shares: the backend, the journal, the progress bar."""

    journal: Annotated[Path | None, Opt(pipeline=True)] = None
    """Journal file (default <output>.journal.sqlite); share one across commands."""
    backend: Annotated[BackendSettings, Opt(pipeline=True)] = BackendSettings()
    """How the model is called (the pipeline's backend: section)."""
    quiet: Annotated[bool, Opt("-q", pipeline=True)] = False
    """No progress bar."""


# ---------------------------------------------------------------- files


def errors_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".errors.jsonl")


def journal_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".journal.sqlite")


def write_errors(output: str | Path, rows: list[dict]) -> Path | None:
    """``<output>.errors.jsonl`` with the calls that still failed, or no file at all (one left by an
    earlier run whose failures have now succeeded is removed)."""
    path = errors_path(output)
    if rows:
        io.write_records(path, rows, "jsonl")
        return path
    path.unlink(missing_ok=True)
    return None


# ---------------------------------------------------------------- inputs


def seeds_path() -> Path:
    return Path(str(resources.files("gpt4llm.data").joinpath("seed_instructions.jsonl")))


def load_instructions(source: str, dedupe: bool = False) -> list[AlpacaRecord]:
    """Validated Alpaca records; duplicate ids are an error unless ``dedupe``."""
    src = seeds_path() if source == SEEDS else source
    records = io.read_records(src, AlpacaRecord)
    seen: dict[str, str] = {}
    out = []
    for rec, where in records:
        first = seen.get(rec.key)
        if first is not None:
            if dedupe:
                continue
            raise UserError(f"{where}: duplicate id {rec.key} (same instruction and input as {first}); "
                            "remove it or pass --dedupe to keep the first")
        seen[rec.key] = where
        out.append(rec)
    if not out:
        raise UserError(f"{src}: no records")
    return out


def select(records: list[AlpacaRecord], shard: str | None, limit: int | None) -> list[AlpacaRecord]:
    """This host's shard of the records, then the first ``limit`` of it."""
    if (s := parse_shard(shard)) is not None:
        records = s.select(records, key=lambda r: r.key)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit {limit}: must be at least 1")
        records = records[:limit]
    return records


# ---------------------------------------------------------------- the backend


def open_backend(model: str, flag: str, backend: BackendSettings, *, dry_run: bool = False, bulk: bool = False,
                 quiet: bool = False, output: str | Path | None = None) -> Backend:
    """The model's backend from the backend settings (close it when the stage ends: ``with``).

    ``bulk`` stages (generate, translate, compare) go through the Batch API when it is on; a dry run
    needs no API key, since it sends nothing; an engine's server logs go to ``engines/`` beside the
    stage's ``output`` unless the settings name a directory."""
    if output is not None and backend.engine_log_dir is None:
        backend = backend.model_copy(update={"engine_log_dir": Path(output).parent / "engines"})
    options = backend.options(quiet=quiet, batch=bulk)
    if dry_run and model.startswith("openai:"):
        options = {"api_key": "dry-run-no-key-needed", **options}
    return create_backend(model, flag, **options)


# ---------------------------------------------------------------- asking a judge


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
    model_returned: str | None = None
    """The model id the endpoint said answered the last call read (None: not told)."""
    system_fingerprint: str | None = None


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
                     max_usd: float | None = None, budget: Budget | None = None) -> tuple[dict[Any, Asked], AskStats]:
    """Ask each ``(tag, messages)`` item; ``parse(text)`` gives ``(value, rule)`` or ``(None, reason)``.
    ``budget``: one cap shared with other askers (a judge panel), instead of a cap of ``max_usd`` of its own."""
    budget = budget or (Budget(max_usd) if max_usd is not None else None)
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
            a.model_returned, a.system_fingerprint = e.model_returned, e.system_fingerprint
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
