"""``gpt4llm generate``: answer instructions with a teacher model (the paper's Algorithm 1).

Load: Alpaca records (instruction, optional input). Do: wrap each in the Alpaca template,
send it as ONE user message with temperature 1.0, top_p 1.0, max_tokens 512, through the
journal. Write: the records with ``output``, ``id`` and ``meta``, in input order; calls that
still failed go to ``<output>.errors.jsonl``, never into the output.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL, create_backend
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Budget, Prices
from gpt4llm.calls import CallStats, Plan, plan_calls, run_calls
from gpt4llm.errors import UserError
from gpt4llm.shard import parse_shard
from gpt4llm.schemas import AlpacaRecord, ErrorRecord, GeneratedRecord, GenerationMeta, Usage
from gpt4llm.templates import ALPACA

SEEDS = "seeds"  # --input seeds: the ~40 instructions bundled with gpt4llm

LANGUAGES = {"zh": "Chinese", "en": "English", "es": "Spanish", "fr": "French", "de": "German",
             "ja": "Japanese", "ko": "Korean", "ru": "Russian", "pt": "Portuguese", "it": "Italian"}


@dataclass
class GenerateConfig:
    output: Path
    """Where to write the answered records (.jsonl by default; .json/.parquet by suffix or --format)."""
    input: str = SEEDS
    """Alpaca records: .json array, .jsonl, .parquet, hf:NAME[:split], or 'seeds' (bundled)."""
    teacher: str = DEFAULT_MODEL
    """The model that answers: local:NAME|PATH or openai:MODEL."""
    limit: int | None = None
    """Answer only the first N records (after validation of all)."""
    params: GenParams = field(default_factory=GenParams)
    """Decoding parameters; the defaults are the paper's (1.0, 1.0, 512 tokens)."""
    language: str | None = None
    """Answer in this language (a code like zh, or a name); adds a system message."""
    drop_truncated: bool = False
    """Leave out answers cut by max_tokens (the paper kept them)."""
    dedupe: bool = False
    """Keep the first of records with the same id instead of refusing the file."""
    format: str | None = None
    """jsonl (default), json (an array shaped like alpaca_gpt4_data.json) or parquet."""
    journal: Path | None = None
    """The journal file; default <output>.journal.sqlite beside the output."""
    backend_options: dict = field(default_factory=dict)
    """Backend settings: batch_size (local); concurrency, rpm, tpm, base_url, timeout (openai)."""
    shard: str | None = None
    """i/n: answer only this host's deterministic 1/n of the input (join with gpt4llm merge)."""
    max_usd: float | None = None
    """Hard cap on the job's total cost in USD, journaled calls included; exit 3 when reached."""
    prices: Prices | None = None
    """USD per 1M tokens in/out; None = the bundled table (local models are free)."""
    dry_run: bool = False
    """Print requests, estimated tokens, cost and time; make no call."""
    quiet: bool = False
    """No progress bar."""


@dataclass
class GenerateSummary:
    output: Path
    written: int
    truncated: int
    dropped_truncated: int
    failed: int
    not_run: int
    errors_file: Path | None
    calls: CallStats


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


def language_system_prompt(language: str | None) -> str | None:
    if not language:
        return None
    name = LANGUAGES.get(language.lower(), language)
    return f"Always respond in {name}."


def errors_path(output: Path) -> Path:
    return output.with_name(output.name + ".errors.jsonl")


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".journal.sqlite")


def build_requests(records: list[AlpacaRecord], params: GenParams, language: str | None = None) -> list[Request]:
    """One request per record: the Alpaca prompt as ONE user message (PAPER.md section 1)."""
    system = language_system_prompt(language)
    return [Request(params=params, messages=ALPACA.messages(r.instruction, r.input, system), tag=r)
            for r in records]


def select(records: list[AlpacaRecord], shard: str | None, limit: int | None) -> list[AlpacaRecord]:
    """This host's shard of the records, then the first ``limit`` of it."""
    if (s := parse_shard(shard)) is not None:
        records = s.select(records, key=lambda r: r.key)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit {limit}: must be at least 1")
        records = records[:limit]
    return records


def open_backend(spec: str, flag: str, options: dict, dry_run: bool):
    """The backend; a dry run needs no API key, since it sends nothing."""
    if dry_run and spec.startswith("openai:"):
        options = {"api_key": "dry-run-no-key-needed", **options}
    return create_backend(spec, flag, **options)


def run(cfg: GenerateConfig) -> GenerateSummary | Plan:
    records = select(load_instructions(cfg.input, cfg.dedupe), cfg.shard, cfg.limit)
    fmt = io.format_for(cfg.output, cfg.format)
    if cfg.max_usd is not None:
        Budget(cfg.max_usd)  # validate before any work
    backend = open_backend(cfg.teacher, "--teacher", cfg.backend_options, cfg.dry_run)
    requests = build_requests(records, cfg.params, cfg.language)
    with Journal(cfg.journal or journal_path(cfg.output)) as journal:
        if cfg.dry_run:
            return plan_calls(backend, journal, requests, prices=cfg.prices,
                              rpm=cfg.backend_options.get("rpm"), tpm=cfg.backend_options.get("tpm"))
        stats = run_calls(backend, journal, requests, label=f"generate {backend.model}", quiet=cfg.quiet,
                          prices=cfg.prices, max_usd=cfg.max_usd)

    out, errors, truncated, dropped, not_run = [], [], 0, 0, 0
    for req in requests:
        rec: AlpacaRecord = req.tag
        entry = stats.entries.get(req.key)
        if entry is None and stats.budget_reached:
            not_run += 1  # not sent: the budget ran out first; a re-run with a higher cap sends it
            continue
        if entry is None or not entry.ok:
            errors.append(ErrorRecord(id=rec.key, instruction=rec.instruction, input=rec.input,
                                      error=entry.error if entry else "not run",
                                      attempts=entry.attempts if entry else 0).model_dump())
            continue
        if entry.finish_reason == "length":
            truncated += 1
            if cfg.drop_truncated:
                dropped += 1
                continue
        meta = GenerationMeta(
            model=backend.model, backend=backend.kind, params=cfg.params.as_dict(),
            usage=Usage(prompt_tokens=entry.prompt_tokens, completion_tokens=entry.completion_tokens),
            finish_reason=entry.finish_reason, latency_s=round(entry.latency_s, 4),
            created=dt.datetime.fromtimestamp(entry.created, dt.timezone.utc).isoformat(timespec="seconds"),
            language=cfg.language, cost_usd=entry.cost_usd)
        out.append(GeneratedRecord(instruction=rec.instruction, input=rec.input, output=entry.text,
                                   id=rec.key, meta=meta).model_dump(exclude_none=True))
    if fmt == "json":  # exactly the released files' shape
        out = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in out]
    io.write_records(cfg.output, out, fmt)
    err_file = errors_path(cfg.output)
    if errors:
        io.write_records(err_file, errors, "jsonl")
    elif err_file.exists():
        err_file.unlink()  # from an earlier run whose failures have now succeeded
    return GenerateSummary(output=cfg.output, written=len(out), truncated=truncated,
                           dropped_truncated=dropped, failed=len(errors), not_run=not_run,
                           errors_file=err_file if errors else None, calls=stats)
