"""The journal of model calls (DESIGN.md principle 3): SQLite in WAL mode.

Every model call is keyed by a hash of (backend, model, messages or prompt, decoding
parameters, sample index). Each result is committed as it arrives; in WAL mode with
``synchronous=NORMAL`` a commit is an append to the WAL without fsync, which survives a
kill -9 of the process (not a power cut), so a crash loses only the calls in flight. A key
that is ``ok`` is never called again; a ``failed`` key is retried on the next run. Requests
are stored without headers, so no API key can enter the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,          -- JSON: messages or prompt, params, sample
    status TEXT NOT NULL,           -- 'ok' | 'failed'
    text TEXT,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    latency_s REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,          -- unix time of the result
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    model_returned TEXT,            -- the model id the endpoint said answered (OpenAI's ``model``)
    system_fingerprint TEXT         -- the endpoint's ``system_fingerprint``; local: a hash of the weights
);
CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT);
"""
# The Batch API's batches (``backends.batch``): a row is written before its batch is created, so a
# kill at any point is repaired by reattaching on the next run.
BATCHES = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,            -- ours, sent as metadata gpt4llm_id before the batch exists
    batch_id TEXT,                  -- OpenAI's; NULL until batches.create answers
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    status TEXT NOT NULL,           -- creating | OpenAI's status | collected | abandoned
    round INTEGER NOT NULL,         -- 0 = first submission, n = n-th resubmission of failed ids
    keys TEXT NOT NULL,             -- JSON list of journal keys (= custom_ids)
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_open ON batches (base_url, model, status);
"""
# Journals are kept across versions of gpt4llm: each version's file is read by every later one.
# MIGRATIONS[v] takes a file of version v to v + 1; a file of a newer version than this code is refused.
SCHEMA_VERSION = 3


def _add_fingerprint_columns(db: sqlite3.Connection) -> None:
    """2 -> 3: which model answered each call, as the endpoint named it (a judge's version is part of
    its verdict). Old rows keep NULL: unknown, never guessed. A file whose calls table was just made
    from SCHEMA (it has no version row) already has the columns."""
    have = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    for col in ("model_returned", "system_fingerprint"):
        if col not in have:
            db.execute(f"ALTER TABLE calls ADD COLUMN {col} TEXT")


MIGRATIONS = {
    1: BATCHES,  # 1 -> 2: the batches table moves into the journal's own schema (created on first use before)
    2: _add_fingerprint_columns,
}

# A failed call never overwrites an ok one; an ok one overwrites a failed one.
UPSERT = """
INSERT INTO calls (key, backend, model, request, status, text, finish_reason, prompt_tokens,
                   completion_tokens, cost_usd, latency_s, created, error, attempts, model_returned,
                   system_fingerprint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    status = excluded.status, text = excluded.text, finish_reason = excluded.finish_reason,
    prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
    cost_usd = excluded.cost_usd, latency_s = excluded.latency_s, created = excluded.created,
    error = excluded.error, attempts = calls.attempts + 1, model_returned = excluded.model_returned,
    system_fingerprint = excluded.system_fingerprint
WHERE calls.status != 'ok'
"""

COLUMNS = ("key", "status", "text", "finish_reason", "prompt_tokens", "completion_tokens",
           "cost_usd", "latency_s", "created", "error", "attempts", "model_returned", "system_fingerprint")


def call_key(backend: str, model: str, request: dict[str, Any]) -> str:
    """The journal key of a call: sha256 of the canonical JSON of what determines its output."""
    blob = json.dumps({"backend": backend, "model": model, **request}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One journaled call result."""

    key: str
    status: str
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    created: float
    error: str | None
    attempts: int
    model_returned: str | None = None
    """The model id the endpoint said answered (None: not told, or journaled before gpt4llm recorded it)."""
    system_fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Journal:
    """A SQLite file of call results; use from one thread (the event loop's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.new = not self.path.exists()
        # isolation_level=None: every statement outside BEGIN is its own committed transaction.
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.schema_version = self._migrate()

    def _migrate(self) -> int:
        """Read the file's schema version and bring it to ours, one step at a time."""
        from gpt4llm.errors import UserError

        row = self.db.execute("SELECT value FROM info WHERE name = 'schema_version'").fetchone()
        version = int(row[0]) if row else (1 if not self.new else SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            self.db.close()
            raise UserError(f"{self.path}: journal schema version {version} is newer than this gpt4llm reads "
                            f"({SCHEMA_VERSION}); upgrade gpt4llm to continue this run")
        if self.new:
            self.db.executescript(BATCHES)
        while version < SCHEMA_VERSION:
            step = MIGRATIONS[version]
            step(self.db) if callable(step) else self.db.executescript(step)
            version += 1
        self.db.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(version),))
        return version

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        empty = self.new and self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
        self.close()
        if empty:  # a run that failed before its first call leaves no file behind
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def lookup(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The journaled entries among ``keys``."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Entry] = {}
        cols = ", ".join(COLUMNS)
        for i in range(0, len(keys), 900):  # SQLite's default limit is 999 bound variables
            chunk = keys[i : i + 900]
            q = f"SELECT {cols} FROM calls WHERE key IN ({','.join('?' * len(chunk))})"
            for row in self.db.execute(q, chunk):
                found[row[0]] = Entry(*row)
        return found

    def record(self, key: str, backend: str, model: str, request: dict[str, Any], *,
               text: str | None = None, finish_reason: str | None = None,
               prompt_tokens: int = 0, completion_tokens: int = 0, cost_usd: float | None = None,
               latency_s: float = 0.0, error: str | None = None, model_returned: str | None = None,
               system_fingerprint: str | None = None) -> None:
        """Commit one result: ``ok`` when ``error`` is None, else ``failed`` with the reason."""
        status = "ok" if error is None else "failed"
        self.db.execute(UPSERT, (
            key, backend, model, json.dumps(request, ensure_ascii=False), status, text,
            finish_reason, prompt_tokens, completion_tokens, cost_usd, latency_s, time.time(),
            error, model_returned, system_fingerprint))

    # -- the Batch API's batches ----------------------------------------------------------------

    def open_batches(self, base_url: str, model: str, closed: tuple[str, ...]) -> list[tuple]:
        """(id, batch_id, endpoint, round, keys JSON, status, created) of the batches of this endpoint
        and model whose status is not one of ``closed``, oldest first."""
        marks = ",".join("?" * len(closed))
        return self.db.execute(
            "SELECT id, batch_id, endpoint, round, keys, status, created FROM batches WHERE base_url = ? "
            f"AND model = ? AND status NOT IN ({marks}) ORDER BY created, rowid", (base_url, model, *closed)).fetchall()

    def add_batch(self, row_id: str, base_url: str, model: str, endpoint: str, input_file_id: str, round: int,
                  keys: list[str]) -> None:
        """A batch about to be created (status 'creating'), committed before the create call."""
        now = time.time()
        self.db.execute("INSERT INTO batches VALUES (?, NULL, ?, ?, ?, ?, 'creating', ?, ?, ?, ?)",
                        (row_id, base_url, model, endpoint, input_file_id, round, json.dumps(keys), now, now))

    def update_batch(self, row_id: str, **cols: Any) -> None:
        sets = ", ".join(f"{c} = ?" for c in cols)
        self.db.execute(f"UPDATE batches SET {sets}, updated = ? WHERE id = ?", (*cols.values(), time.time(), row_id))

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM calls GROUP BY status").fetchall())
