"""Record files -> Parquet shards that ``datasets.load_dataset`` reads with fixed, declared columns.

Which kind of records a file holds is read from its first record's fields, then every record is
validated as that kind (a bad one is ``file:line: what``). Each kind has a declared Arrow schema,
so a column's type never depends on which records happen to be in a file:

- ``meta`` (what gpt4llm adds: model, params, usage, judge rationales...) is stored as a JSON
  string. Its keys differ between stages and between records of one file (a failed parse adds
  keys, an answer without usage lacks them), values change type (a score is 9 here and None
  there), and an empty ``{}`` cannot be a Parquet struct at all; inferring a struct from such
  data gives a schema that changes from one release to the next or fails. ``json.loads(row["meta"])``
  gives it back exactly.
- Other fields beyond the kind's own are kept: a column of strings (or of bools, ints, floats)
  when every value is one, else JSON strings.

Shards follow ``datasets.push_to_hub``'s layout and size (``config.MAX_SHARD_SIZE``, 500 MB of
Arrow data per file): ``data/train-00000-of-00001.parquet`` for a file's one config, and
``<config>/train-0000i-of-0000n.parquet`` for each config of a study.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import AlpacaRecord, Comparison


class _Pair(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None


class _KTO(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    prompt: str
    completion: str
    label: bool


class _PairV1(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    user_input: str
    completion_a: str
    completion_b: str


class _Message(BaseModel):
    model_config = ConfigDict(strict=True)
    role: str
    content: str


class _Messages(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    messages: list[_Message]


@dataclass(frozen=True)
class Kind:
    name: str
    fields: tuple[str, ...]
    """The fields that identify the kind (all present in the first record)."""
    schema: type[BaseModel]
    columns: tuple[tuple[str, str], ...]
    """(column, Arrow type name) declared for the kind, in order."""
    task_categories: tuple[str, ...]
    what: str


KINDS = (
    Kind("comparison", ("user_input", "responses_and_scores"), Comparison,
         (("user_input", "string"), ("responses_and_scores", "responses"), ("id", "string"), ("meta", "json")),
         ("text-generation",), "comparison data (GPT-4-LLM comparison v2: K responses per prompt, each scored 1-10)"),
    Kind("preference", ("prompt", "chosen", "rejected"), _Pair,
         (("prompt", "string"), ("chosen", "string"), ("rejected", "string"), ("margin", "float64")),
         ("text-generation",), "preference pairs (TRL's prompt, chosen, rejected)"),
    Kind("kto", ("prompt", "completion", "label"), _KTO,
         (("prompt", "string"), ("completion", "string"), ("label", "bool")),
         ("text-generation",), "unpaired preferences (TRL's KTO: prompt, completion, label)"),
    Kind("comparison-v1", ("user_input", "completion_a", "completion_b"), _PairV1,
         (("user_input", "string"), ("completion_a", "string"), ("completion_b", "string")),
         ("text-generation",), "preference pairs (GPT-4-LLM comparison v1: completion_a preferred)"),
    Kind("messages", ("messages",), _Messages, (("messages", "messages"),),
         ("text-generation",), "conversations (TRL's messages)"),
    Kind("alpaca", ("instruction",), AlpacaRecord,
         (("instruction", "string"), ("input", "string"), ("output", "string"), ("id", "string"), ("meta", "json")),
         ("text-generation", "question-answering"), "instruction data (Alpaca: instruction, input, output)"),
)
KNOWN = ", ".join(f"{k.name} ({', '.join(k.fields)})" for k in KINDS)


def _arrow_type(name: str):
    import pyarrow as pa

    return {
        "string": pa.string(), "json": pa.string(), "float64": pa.float64(), "bool": pa.bool_(), "int64": pa.int64(),
        "responses": pa.list_(pa.struct([("response", pa.string()), ("score", pa.float64()), ("source", pa.string())])),
        "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
    }[name]


@dataclass
class Table:
    """One config's records, validated, with the kind they are and where they came from."""

    kind: Kind
    source: Path
    rows: list[dict]
    extra: list[tuple[str, str]] = field(default_factory=list)
    """Columns beyond the kind's own, with their type."""

    @property
    def columns(self) -> list[tuple[str, str]]:
        present = {k for r in self.rows for k in r}
        own = [(c, t) for c, t in self.kind.columns if c in present or c in self.kind.fields]
        return own + self.extra


def detect(path: Path, first: Any, where: str) -> Kind:
    if not isinstance(first, dict):
        raise UserError(f"{where}: expected a JSON object per record, got {type(first).__name__}; "
                        f"publish reads {KNOWN}")
    for kind in KINDS:
        if all(f in first for f in kind.fields):
            return kind
    got = ", ".join(list(first)[:6]) or "no fields"
    raise UserError(f"{where}: not a dataset gpt4llm publishes (fields: {got}); expected one of {KNOWN}")


def _value_type(values: list[Any]) -> str:
    """The Arrow type of an extra column: one scalar type throughout (None allowed), else JSON."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    return "json"


def load(path: Path) -> Table:
    """The records of a data file, validated as one kind; the first bad record is a ``UserError``."""
    rows = io.read_rows(path)
    if not rows:
        raise UserError(f"{path}: no records; nothing to publish")
    kind = detect(path, rows[0].data, rows[0].where)
    out = []
    for row in rows:
        if not isinstance(row.data, dict):
            raise UserError(f"{row.where}: expected a JSON object, got {type(row.data).__name__}")
        try:
            rec = kind.schema.model_validate(row.data)
        except ValidationError as e:
            raise UserError(f"{row.where}: not a {kind.name} record ({io.describe_validation_error(e)})") from e
        d = dict(row.data)
        if kind.name == "alpaca":
            d["input"] = rec.input  # null -> "" as AlpacaRecord reads it
        elif kind.name == "comparison":  # the declared struct's fields, scores as numbers
            d["responses_and_scores"] = [x.model_dump() for x in rec.responses_and_scores]
        elif kind.name == "messages":
            d["messages"] = [m.model_dump() for m in rec.messages]
        out.append(d)
    own = {c for c, _ in kind.columns}
    names = list(dict.fromkeys(k for r in out for k in r if k not in own))
    extra = [(n, _value_type([r.get(n) for r in out])) for n in names]
    return Table(kind, path, out, extra)


def arrow_table(t: Table):
    import pyarrow as pa

    cols = t.columns
    schema = pa.schema([(c, _arrow_type(typ)) for c, typ in cols])
    data = {}
    for c, typ in cols:
        values = [r.get(c) for r in t.rows]
        if typ == "json":
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        elif typ == "float64":
            values = [None if v is None else float(v) for v in values]
        data[c] = values
    return pa.Table.from_pydict(data, schema=schema)


def shard_paths(config: str, single: bool, n: int) -> list[str]:
    folder = "data" if single else config
    return [f"{folder}/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]


def write_shards(t: Table, out_dir: Path, config: str, single: bool, max_shard_bytes: float) -> tuple[list[str], Any]:
    """Parquet shards of one config under ``out_dir``; returns (relative paths, the Arrow table)."""
    import pyarrow.parquet as pq

    table = arrow_table(t)
    n = max(1, min(table.num_rows, math.ceil(table.nbytes / max_shard_bytes)))
    paths = shard_paths(config, single, n)
    per = math.ceil(table.num_rows / n)
    for i, rel in enumerate(paths):
        dest = out_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(i * per, per), dest)
    return paths, table


def features_yaml(table) -> list[dict]:
    """The ``dataset_info.features`` of the card, as ``datasets`` writes them itself."""
    from datasets import Features

    return Features.from_arrow_schema(table.schema)._to_yaml_list()
