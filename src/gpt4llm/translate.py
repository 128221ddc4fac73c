"""``gpt4llm translate``: the paper's Chinese data, step one (PAPER.md section 1): translate each
record's ``instruction`` and ``input`` (not ``output``) with our own prompt (the paper's is not
published), one call per non-empty field through the journal. A translation that lost a
protected span of its source (a code block, inline code, a URL, a number, a placeholder) is a
failure listed in ``<output>.errors.jsonl``, never a damaged record. Then ``gpt4llm generate
--language zh`` answers the translated instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import estimate_tokens
from gpt4llm.calls import CallStats, Plan, plan_calls, run_calls
from gpt4llm.generate import LANGUAGES
from gpt4llm.schemas import record_id
from gpt4llm.settings import Opt
from gpt4llm.stage import SEEDS, ModelCallSettings, journal_path, load_instructions, open_backend, select, write_errors

PROMPT = resources.files("gpt4llm.prompts").joinpath("translate.txt").read_text(encoding="utf-8")
PROTECTED = re.compile(r"```.*?```|`[^`\n]+`|https?://\S+|[\w.+-]+@[\w-]+\.[\w.]+|\{[^{}\s]+\}|<[A-Z_][A-Z0-9_]*>"
                       r"|\$[A-Za-z_]\w*|%[sd]|\d+(?:[.,]\d+)*", re.S)


def protected_spans(text: str) -> list[str]:
    return [m.group(0).rstrip(".,;:)") for m in PROTECTED.finditer(text)]


def clean(answer: str) -> str:
    """Strip what models wrap translations in: tags, a 'Translation:' label, quotes."""
    t = answer.strip()
    t = re.sub(r"^\s*<text>\s*|\s*</text>\s*$", "", t)
    t = re.sub(r"^(translation|翻译|译文)\s*[:：]\s*", "", t, flags=re.I)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”「":
        t = t[1:-1].strip()
    return t


def check(source: str, translation: str) -> str | None:
    """None when the translation keeps every protected span of the source, else the reason."""
    if not translation:
        return "empty translation"
    for span in protected_spans(source):
        if span not in translation:
            return f"lost protected span {span[:40]!r}"
    return None


class TranslateSettings(ModelCallSettings):
    """gpt4llm translate: the instructions and inputs in another language (the paper's Chinese data)."""

    output: Annotated[Path, Opt("-o", pipeline=True)]
    """The translated records (JSONL)."""
    input: Annotated[str, Opt("-i", pipeline=True)] = SEEDS
    """Alpaca records (instruction and input are translated)."""
    to: Annotated[str, Opt(pipeline=True)] = "zh"
    """Target language: a code (zh) or a name (pipeline: each of stages.generate.languages)."""
    translator: Annotated[str, Opt("-m", pipeline=True)] = DEFAULT_MODEL
    """The model that translates (pipeline: models.translator)."""
    limit: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """Translate only the first N records (pipeline: data.limit)."""
    shard: Annotated[str | None, Opt(pipeline=True)] = None
    """i/n: this host's 1/n of the input."""
    temperature: float = Field(0.0, ge=0, le=2)
    """0: a translation is not a creative task, and a re-run gives the same text (the paper's prompt and settings are not published)."""
    dry_run: Annotated[bool, Opt(pipeline=True)] = False
    """Print the plan; call nothing."""


@dataclass
class TranslateSummary:
    output: Path
    written: int
    failed: int
    calls: CallStats


def run(cfg: TranslateSettings) -> TranslateSummary | Plan:
    records = select(load_instructions(cfg.input), cfg.shard, cfg.limit)
    language = LANGUAGES.get(cfg.to.lower(), cfg.to)
    backend = open_backend(cfg.translator, "--translator", cfg.backend, dry_run=cfg.dry_run, bulk=True, quiet=cfg.quiet, output=cfg.output)
    prices = cfg.backend.prices_for(cfg.translator)
    requests = []
    for rec in records:
        for fld in ("instruction", "input"):
            text = getattr(rec, fld)
            if text:
                # Chinese takes about as many tokens as English under modern BPEs; 2x + 64 leaves room.
                params = GenParams(temperature=cfg.temperature, top_p=1.0, max_tokens=2 * estimate_tokens(text) + 64)
                prompt = PROMPT.replace("{language}", language).replace("{text}", text)
                requests.append(Request(params=params, messages=[{"role": "user", "content": prompt}], tag=(rec, fld)))
    with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
        if cfg.dry_run:
            return plan_calls(backend, journal, requests, prices=prices, rpm=cfg.backend.rpm, tpm=cfg.backend.tpm)
        stats = run_calls(backend, journal, requests, label=f"translate to {language}", quiet=cfg.quiet, prices=prices)
    done: dict[str, dict] = {}
    reasons: dict[str, str] = {}
    for req in requests:
        rec, fld = req.tag
        e = stats.entries.get(req.key)
        if e is None or not e.ok:
            reasons.setdefault(rec.key, f"{fld}: {e.error if e else 'not run'}")
            continue
        text = clean(e.text)
        if (why := check(getattr(rec, fld), text)) is not None:
            reasons.setdefault(rec.key, f"{fld}: {why}")
            continue
        done.setdefault(rec.key, {})[fld] = text
    out, errors = [], []
    for rec in records:
        if rec.key in reasons:
            errors.append({"id": rec.key, "instruction": rec.instruction, "input": rec.input, "error": reasons[rec.key]})
            continue
        t = done[rec.key]
        instruction, input = t["instruction"], t.get("input", "")
        out.append({"instruction": instruction, "input": input, "id": record_id(instruction, input),
                    "meta": {"source_id": rec.key, "language": cfg.to, "translator": f"{backend.kind}:{backend.model}",
                             "params": {"temperature": cfg.temperature, "top_p": 1.0}}})
    io.write_records(cfg.output, out)
    write_errors(cfg.output, errors)
    return TranslateSummary(cfg.output, len(out), len(errors), stats)
