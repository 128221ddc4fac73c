"""``gpt4llm generate``: answer instructions with a teacher model (the paper's Algorithm 1).

Load: Alpaca records (instruction, optional input). Do: wrap each in the Alpaca template,
send it as ONE user message with temperature 1.0, top_p 1.0, max_tokens 512, through the
journal. Write: the records with ``output``, ``id`` and ``meta``, in input order; calls that
still failed go to ``<output>.errors.jsonl``, never into the output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Budget
from gpt4llm.calls import CallStats, Plan, plan_calls, run_calls
from gpt4llm.schemas import AlpacaRecord, ErrorRecord, GeneratedRecord, GenerationMeta, Usage
from gpt4llm.settings import USD, Opt
from gpt4llm.stage import SEEDS, ModelCallSettings, journal_path, load_instructions, open_backend, select, write_errors
from gpt4llm.templates import ALPACA

LANGUAGES = {"zh": "Chinese", "en": "English", "es": "Spanish", "fr": "French", "de": "German",
             "ja": "Japanese", "ko": "Korean", "ru": "Russian", "pt": "Portuguese", "it": "Italian"}


class GenerateSettings(ModelCallSettings):
    """gpt4llm generate: a teacher answers instructions (the paper's Algorithm 1)."""

    output: Annotated[Path, Opt("-o", pipeline=True)]
    """Output file (.jsonl; .json/.parquet by suffix or --format)."""
    input: Annotated[str, Opt("-i", pipeline=True)] = SEEDS
    """Alpaca records: .json/.jsonl/.parquet, hf:NAME[:split], or 'seeds' (the bundled 40)."""
    teacher: Annotated[str, Opt("-m", pipeline=True)] = DEFAULT_MODEL
    """The model that answers: local:NAME|PATH or openai:MODEL (pipeline: models.teacher)."""
    limit: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """Answer only the first N records (pipeline: data.limit)."""
    max_tokens: int = Field(512, ge=1)
    """Max completion tokens (paper: 512)."""
    temperature: float = Field(1.0, ge=0, le=2)
    """Sampling temperature (paper: 1.0; 0 = greedy)."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling (paper: 1.0)."""
    seed: int | None = None
    """Sampling seed, passed to the backend."""
    language: Annotated[str | None, Opt(pipeline=True)] = None
    """Answer in this language (zh, or a name): adds the system message "Always respond in ..."."""
    languages: Annotated[list[str], Opt(cli=False)] = ["en"]
    """Pipeline: en, plus any language the instructions are translated into first (the paper: zh)."""
    drop_truncated: bool = False
    """Leave out answers cut at --max-tokens (the paper kept them)."""
    dedupe: Annotated[bool, Opt(pipeline=True)] = False
    """Keep the first of duplicate records instead of refusing the file."""
    format: Annotated[Literal["jsonl", "json", "parquet"] | None, Opt(pipeline=True)] = None
    """jsonl (default), json (like alpaca_gpt4_data.json) or parquet."""
    shard: Annotated[str | None, Opt(pipeline=True)] = None
    """i/n: this host's deterministic 1/n of the input (join with gpt4llm merge)."""
    max_usd: USD = None
    """Stop before the job's total cost would pass this (exit 3; re-run with more to continue)."""
    dry_run: Annotated[bool, Opt(pipeline=True)] = False
    """Print requests, estimated tokens, cost and time; call nothing."""

    def params(self) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed)


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


def language_system_prompt(language: str | None) -> str | None:
    if not language:
        return None
    name = LANGUAGES.get(language.lower(), language)
    return f"Always respond in {name}."


def build_requests(records: list[AlpacaRecord], params: GenParams, language: str | None = None) -> list[Request]:
    """One request per record: the Alpaca prompt as ONE user message (PAPER.md section 1)."""
    system = language_system_prompt(language)
    return [Request(params=params, messages=ALPACA.messages(r.instruction, r.input, system), tag=r)
            for r in records]


def run(cfg: GenerateSettings) -> GenerateSummary | Plan:
    records = select(load_instructions(cfg.input, cfg.dedupe), cfg.shard, cfg.limit)
    fmt = io.format_for(cfg.output, cfg.format)
    if cfg.max_usd is not None:
        Budget(cfg.max_usd)  # validate before any work
    backend = open_backend(cfg.teacher, "--teacher", cfg.backend, dry_run=cfg.dry_run, bulk=True, quiet=cfg.quiet, output=cfg.output)
    prices = cfg.backend.prices_for(cfg.teacher)
    params = cfg.params()
    requests = build_requests(records, params, cfg.language)
    with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
        if cfg.dry_run:
            return plan_calls(backend, journal, requests, prices=prices, rpm=cfg.backend.rpm, tpm=cfg.backend.tpm)
        stats = run_calls(backend, journal, requests, label=f"generate {backend.model}", quiet=cfg.quiet,
                          prices=prices, max_usd=cfg.max_usd)

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
            model=backend.model, backend=backend.kind, params=params.as_dict(),
            usage=Usage(prompt_tokens=entry.prompt_tokens, completion_tokens=entry.completion_tokens),
            finish_reason=entry.finish_reason, latency_s=round(entry.latency_s, 4),
            created=dt.datetime.fromtimestamp(entry.created, dt.timezone.utc).isoformat(timespec="seconds"),
            language=cfg.language, cost_usd=entry.cost_usd)
        out.append(GeneratedRecord(instruction=rec.instruction, input=rec.input, output=entry.text,
                                   id=rec.key, meta=meta).model_dump(exclude_none=True))
    if fmt == "json":  # exactly the released files' shape
        out = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in out]
    io.write_records(cfg.output, out, fmt)
    err_file = write_errors(cfg.output, errors)
    return GenerateSummary(output=cfg.output, written=len(out), truncated=truncated,
                           dropped_truncated=dropped, failed=len(errors), not_run=not_run,
                           errors_file=err_file, calls=stats)
