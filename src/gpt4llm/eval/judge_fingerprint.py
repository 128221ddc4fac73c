"""Which judge gave a verdict, exactly: its fingerprint, and the refusal to mix two in one board.

Scores move when a judge's version changes ("gpt-4" served by gpt-4-0314, then gpt-4-0613), when its
prompt or its decoding changes, and nobody notices unless each verdict says which judge gave it.
Every verdict ``eval judge`` and ``compare`` write carries ``meta.judge_fingerprint``:

- ``judge``: the model asked for (``openai:gpt-4o``);
- ``model_returned``: the model id the endpoint said answered (OpenAI's ``model`` field of the
  response, e.g. ``gpt-4o-2024-08-06``; vLLM returns the served name; local: ``local:<name>``);
- ``system_fingerprint``: the endpoint's ``system_fingerprint`` (OpenAI's serving configuration;
  local: a hash of the weights files, or the hub revision loaded);
- ``prompt_template_sha256``: sha256 of the prompt template record and the follow-up turn;
- ``params``: the decoding settings (temperature, top_p, max_tokens, seed) and the score mode.

``check`` groups the verdicts of a board by each field and refuses (one line, exit 2) when a field
has two known values, naming the field, each value and how many verdicts carry it, unless the caller
allows mixing. An unknown value (a file written before fingerprints, FastChat or AlpacaEval inputs,
a journal entry older than the columns) never causes a refusal: it is counted and said.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from gpt4llm.errors import UserError

FIELDS = ("judge", "model_returned", "system_fingerprint", "prompt_template_sha256", "params")


def template_sha256(*parts: Any) -> str:
    """sha256 of the canonical JSON of what makes up a judge's prompt (template record, follow-up)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def make(judge: str, model_returned: str | None, system_fingerprint: str | None, template: str,
         params: dict) -> dict:
    return {"judge": judge, "model_returned": model_returned, "system_fingerprint": system_fingerprint,
            "prompt_template_sha256": template, "params": dict(sorted(params.items()))}


def _value(fp: dict | None, field: str) -> str | None:
    v = (fp or {}).get(field)
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def differing(fps: list[tuple[dict | None, str]]) -> dict[str, dict[str, list]]:
    """{field: {value: [verdicts, first where]}} of the fields with two or more known values."""
    out = {}
    for field in FIELDS:
        seen: dict[str, list] = {}
        for fp, where in fps:
            v = _value(fp, field)
            if v is not None:
                seen.setdefault(v, [0, where])[0] += 1
        if len(seen) > 1:
            out[field] = seen
    return out


def describe(fps: list[tuple[dict | None, str]]) -> str:
    """One line: the judge of these verdicts (the most common value of each field) and the unknowns."""
    if not fps:
        return "no verdicts"
    parts = []
    for field in FIELDS:
        values = Counter(_value(fp, field) for fp, _ in fps)
        known = [(v, n) for v, n in values.most_common() if v is not None]
        shown = known[0][0] if known else "unknown"
        if field == "prompt_template_sha256" and known:
            shown = shown[:12]
        parts.append(f"{field} {shown}" + (f" ({values[None]} unknown)" if known and values[None] else ""))
    return f"{len(fps)} verdicts: " + ", ".join(parts)


def check(fps: list[tuple[dict | None, str]], allow_mixed: bool, flag: str = "--allow-mixed-judges") -> list[str]:
    """Refuse verdicts of different judges in one table (UserError naming what differs), or with
    ``allow_mixed`` return the notes that say it; plus a note when some fingerprints are unknown."""
    diff = differing(fps)
    notes = []
    if diff:
        what = "; ".join(f"{field} differs (" + ", ".join(f"{v if len(v) < 60 else v[:57] + '...'}: {n} verdicts, "
                                                         f"first {where}" for v, (n, where) in vals.items()) + ")"
                         for field, vals in diff.items())
        if not allow_mixed:
            raise UserError(f"these verdicts come from different judges: {what}; one table needs one judge "
                            f"(re-judge with one, or pass {flag} to build it anyway)")
        notes.append(f"mixed judges ({flag}): {what}")
    unknown = sum(1 for fp, _ in fps if fp is None)
    if unknown:
        notes.append(f"{unknown} of {len(fps)} verdicts carry no judge fingerprint (written before gpt4llm recorded "
                     "it, or another tool's file): their judge version is unknown")
    return notes
