"""``gpt4llm merge``: join the outputs of ``--shard i/n`` runs into one file.

Records are keyed by ``id``; the same id in two shards must be the same record (else the second
place is named, file:line). With ``--input`` (the original input) the result is in input order
(a translated record is placed by its ``meta.source_id``); otherwise in file order. The shards'
``.errors.jsonl`` files are merged too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt, Settings
from gpt4llm.stage import errors_path, load_instructions, write_errors


class MergeSettings(Settings):
    """gpt4llm merge: join the outputs of --shard i/n runs (ids must agree; input order with --input)."""

    shards: Annotated[list[str], Opt(argument=True)]
    """The shard outputs to join."""
    output: Annotated[Path, Opt("-o")]
    """The joined file."""
    input: Annotated[str | None, Opt("-i")] = None
    """The original input, to restore its order."""
    format: Literal["jsonl", "json", "parquet"] | None = None
    """jsonl (default), json or parquet."""


def run(cfg: MergeSettings) -> dict:
    shards, output, input, fmt = cfg.shards, cfg.output, cfg.input, cfg.format
    if not shards:
        raise UserError("merge: give the shard files to join")
    records: dict[str, dict] = {}
    where: dict[str, str] = {}
    for path in shards:
        for row in io.read_rows(path):
            d = row.data
            if not isinstance(d, dict) or not isinstance(d.get("id"), str):
                raise UserError(f"{row.where}: a record without an 'id' (merge joins gpt4llm outputs)")
            if d["id"] in records and records[d["id"]] != d:
                raise UserError(f"{row.where}: id {d['id']} is also at {where[d['id']]} with different content")
            records.setdefault(d["id"], d)
            where.setdefault(d["id"], row.where)
    out = list(records.values())
    if input:
        order = {rec.key: i for i, rec in enumerate(load_instructions(input))}
        def rank(d: dict) -> int:
            key = (d.get("meta") or {}).get("source_id") or d["id"]
            if key not in order:
                raise UserError(f"{where[d['id']]}: id {key} is not in {input}")
            return order[key]
        out.sort(key=rank)
    io.write_records(output, out, fmt)
    errors = [r.data for p in shards if errors_path(p).exists() for r in io.read_rows(errors_path(p))]
    write_errors(output, errors)
    return {"records": len(out), "errors": len(errors), "shards": len(shards)}
