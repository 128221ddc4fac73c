"""Reading and writing record files: JSON arrays, JSONL, Parquet and ``hf:NAME[:split]``.

Every reader reports a bad record as ``file:line: what is wrong`` (a ``UserError``), and every
writer writes a temporary file beside the target and renames it, so a crash never leaves a
half-written output (DESIGN.md principle 7).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pydantic import BaseModel, ValidationError

from gpt4llm.errors import UserError

FORMATS = ("jsonl", "json", "parquet")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Row:
    """One raw record and where it came from (``file:line`` or ``hf:name[index]``)."""

    data: Any
    where: str


# ---------------------------------------------------------------- reading


def read_rows(source: str | Path) -> list[Row]:
    """Raw records of a file or ``hf:NAME[:split]``, each with its location."""
    source = str(source)
    if source.startswith("hf:"):
        return _read_hf(source)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a .json, .jsonl or .parquet file")
    if path.suffix == ".parquet":
        return _read_parquet(path)
    text = _read_text(path)
    first = text.lstrip()[:1]
    if path.suffix in (".jsonl", ".ndjson") or first != "[":
        return _read_jsonl(path, text)
    return _read_json_array(path, text)


def read_records(source: str | Path, schema: type[M]) -> list[tuple[M, str]]:
    """Validated records with their locations; the first bad record is a ``UserError``."""
    out = []
    for row in read_rows(source):
        if not isinstance(row.data, dict):
            raise UserError(f"{row.where}: expected a JSON object, got {type(row.data).__name__}")
        try:
            out.append((schema.model_validate(row.data), row.where))
        except ValidationError as e:
            raise UserError(f"{row.where}: {describe_validation_error(e)}") from e
    return out


def describe_validation_error(e: ValidationError) -> str:
    """The first problem of a pydantic error as a short sentence naming the field."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "record"
    kind = err["type"]
    if kind == "missing":
        return f"field '{field}' is missing"
    if kind == "string_type":
        got = type(err.get("input")).__name__
        return f"field '{field}' must be a string, got {got}"
    if kind == "string_too_short":
        return f"field '{field}' is empty"
    return f"field '{field}': {err['msg']}"


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}); re-encode the file as UTF-8"
        ) from e
    return text.removeprefix("\ufeff")


def _json_error(path: Path, e: json.JSONDecodeError, line_offset: int = 0) -> UserError:
    return UserError(f"{path}:{e.lineno + line_offset}:{e.colno}: malformed JSON ({e.msg})")


def _read_jsonl(path: Path, text: str) -> list[Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Row(json.loads(line), f"{path}:{n}"))
        except json.JSONDecodeError as e:
            raise _json_error(path, e, n - 1) from e
    return rows


def _read_json_array(path: Path, text: str) -> list[Row]:
    """A JSON array, element by element, so each record knows its line."""
    decoder = json.JSONDecoder()
    ws = " \t\n\r"
    i = text.index("[") + 1
    line, counted = 1, 0
    rows: list[Row] = []
    try:
        while True:
            while i < len(text) and text[i] in ws:
                i += 1
            if i < len(text) and text[i] == "]":
                i += 1
                break
            if rows:
                if i >= len(text) or text[i] != ",":
                    raise json.JSONDecodeError("expected ',' or ']'", text, i)
                i += 1
                while i < len(text) and text[i] in ws:
                    i += 1
            line += text.count("\n", counted, i)
            counted = i
            obj, i = decoder.raw_decode(text, i)
            rows.append(Row(obj, f"{path}:{line}"))
        if text[i:].strip():
            raise json.JSONDecodeError("extra data after the array", text, i)
    except json.JSONDecodeError as e:
        raise _json_error(path, e) from e
    return rows


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: not a readable Parquet file ({e})") from e
    return [Row(r, f"{path}:row {i + 1}") for i, r in enumerate(table.to_pylist())]


def _read_hf(source: str) -> list[Row]:
    name, _, split = source[3:].partition(":")
    split = split or "train"
    if not name:
        raise UserError(f"{source}: expected hf:NAME[:split], e.g. hf:tatsu-lab/alpaca:train")
    try:
        import datasets
        import huggingface_hub

        datasets.disable_progress_bars()
        if not logging.getLogger().isEnabledFor(logging.DEBUG):  # hub retries print many lines
            huggingface_hub.utils.logging.set_verbosity_error()
            datasets.logging.set_verbosity_error()
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, bad split: all one message to the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{source}: cannot load the dataset from the Hugging Face hub ({reason}); "
            "check the name and your network, or download it and pass a file"
        ) from e
    return [Row(r, f"{source}[{i}]") for i, r in enumerate(ds)]


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto it only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The output format: the one asked for, else from the suffix, else JSONL."""
    if fmt:
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt}: unknown format; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lstrip(".")
    return suffix if suffix in ("json", "parquet") else "jsonl"


def write_records(path: str | Path, records: Iterable[dict], fmt: str | None = None) -> int:
    """Write records atomically as JSONL (default), a JSON array, or Parquet; returns the count."""
    fmt = format_for(path, fmt)
    records = list(records)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(records), tmp)
        elif fmt == "json":
            # The released alpaca_gpt4_data.json form: one array, 4-space indent, UTF-8 text.
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(records, f, indent=4, ensure_ascii=False)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False))
                    f.write("\n")
    return len(records)


def write_json(path: str | Path, obj: Any) -> None:
    """One JSON document (a report, a summary), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """A text file (a report page), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
