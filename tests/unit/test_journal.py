import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from gpt4llm.backends.journal import Journal, call_key

REQ = {"messages": [{"role": "user", "content": "hi"}], "params": {"temperature": 1.0}, "sample": 0}


def test_key_covers_backend_model_messages_params_and_sample():
    base = call_key("openai", "gpt-4", REQ)
    assert base == call_key("openai", "gpt-4", dict(reversed(list(REQ.items()))))  # order-free
    assert len({base,
                call_key("local", "gpt-4", REQ),
                call_key("openai", "gpt-4o", REQ),
                call_key("openai", "gpt-4", {**REQ, "messages": [{"role": "user", "content": "hi "}]}),
                call_key("openai", "gpt-4", {**REQ, "params": {"temperature": 0.9}}),
                call_key("openai", "gpt-4", {**REQ, "sample": 1})}) == 6


def test_failed_then_ok_and_ok_is_never_overwritten(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.record("k", "openai", "m", REQ, error="HTTP 500: boom")
        e = j.lookup(["k"])["k"]
        assert (e.status, e.error, e.attempts) == ("failed", "HTTP 500: boom", 1)
        j.record("k", "openai", "m", REQ, text="hello", finish_reason="stop", prompt_tokens=3, completion_tokens=1)
        e = j.lookup(["k"])["k"]
        assert (e.status, e.text, e.error, e.attempts, e.prompt_tokens) == ("ok", "hello", None, 2, 3)
        j.record("k", "openai", "m", REQ, error="late failure")
        j.record("k", "openai", "m", REQ, text="other")
        assert j.lookup(["k"])["k"].text == "hello"
        assert j.counts() == {"ok": 1}


def test_lookup_many_keys(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.db.execute("BEGIN")
        for i in range(2500):
            j.record(f"k{i}", "local", "m", REQ, text=str(i))
        j.db.execute("COMMIT")
        got = j.lookup([f"k{i}" for i in range(0, 3000, 7)])
    assert len(got) == len(range(0, 2500, 7)) and got["k14"].text == "14"


def test_no_api_key_or_header_is_stored(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        j.record("k", "openai", "m", REQ, text="x")
    assert b"sk-" not in (tmp_path / "j.sqlite").read_bytes()


def test_an_empty_new_journal_leaves_no_file(tmp_path):
    with Journal(tmp_path / "j.sqlite"):
        pass
    assert list(tmp_path.iterdir()) == []


WRITER = textwrap.dedent("""
    import sys, time
    from gpt4llm.backends.journal import Journal
    j = Journal(sys.argv[1])
    i = 0
    while True:
        j.record(f"k{i}", "local", "m", {"prompt": str(i)}, text="x" * 2000)
        print(i, flush=True)
        i += 1
""")


def test_kill_9_mid_write_keeps_every_committed_entry_and_a_sound_file(tmp_path):
    path = tmp_path / "j.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.time() + 60
    while acknowledged < 300 and time.time() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Journal(path) as j:
        got = j.lookup(f"k{i}" for i in range(acknowledged + 1))
        # every result the writer saw committed is there, after a kill at an arbitrary point
        assert len(got) == acknowledged + 1 and all(e.ok for e in got.values())


def test_schema_version_is_read_and_an_old_journal_is_migrated(tmp_path):
    from gpt4llm.backends.journal import SCHEMA_VERSION

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)  # a journal as version 1 wrote it: no batches table yet
    db.executescript("""CREATE TABLE calls (key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL,
        request TEXT NOT NULL, status TEXT NOT NULL, text TEXT, finish_reason TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL, latency_s REAL NOT NULL DEFAULT 0, created REAL NOT NULL,
        error TEXT, attempts INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT);
        INSERT INTO info VALUES ('schema_version', '1');
        INSERT INTO calls (key, backend, model, request, status, text, created) VALUES ('k', 'openai', 'm', '{}', 'ok', 'kept', 0);""")
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION == 3
        assert j.lookup(["k"])["k"].text == "kept"
        assert j.lookup(["k"])["k"].model_returned is None  # unknown, never guessed
        j.add_batch("b1", "http://x/v1", "m", "/v1/chat/completions", "file-1", 0, ["k"])
        assert [r[0] for r in j.open_batches("http://x/v1", "m", ("collected",))] == ["b1"]
        j.update_batch("b1", status="collected")
        assert j.open_batches("http://x/v1", "m", ("collected",)) == []
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM info WHERE name='schema_version'").fetchone()[0] == "3"


def test_a_version_2_journal_gets_the_returned_model_columns_and_keeps_its_calls(tmp_path):
    """Version 2 (before fingerprints): its calls are read (model_returned unknown) and new calls
    record the model id and system fingerprint the endpoint returned."""
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE calls (key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL,
        request TEXT NOT NULL, status TEXT NOT NULL, text TEXT, finish_reason TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL, latency_s REAL NOT NULL DEFAULT 0, created REAL NOT NULL,
        error TEXT, attempts INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT);
        INSERT INTO info VALUES ('schema_version', '2');
        INSERT INTO calls (key, backend, model, request, status, text, created) VALUES ('old', 'openai', 'm', '{}', 'ok', 'x', 0);""")
    db.commit()
    db.close()
    with Journal(path) as j:
        j.record("new", "openai", "gpt-4o", REQ, text="y", model_returned="gpt-4o-2024-08-06", system_fingerprint="fp_1")
        got = j.lookup(["old", "new"])
    assert (got["old"].text, got["old"].model_returned, got["old"].system_fingerprint) == ("x", None, None)
    assert (got["new"].model_returned, got["new"].system_fingerprint) == ("gpt-4o-2024-08-06", "fp_1")
    with Journal(path) as j:  # opened again: nothing to migrate, nothing lost
        assert j.schema_version == 3 and j.lookup(["new"])["new"].model_returned == "gpt-4o-2024-08-06"


def test_a_journal_from_a_newer_version_is_refused(tmp_path):
    import pytest

    from gpt4llm.errors import UserError

    path = tmp_path / "new.sqlite"
    with Journal(path) as j:
        j.record("k", "openai", "m", REQ, text="x")
        j.db.execute("UPDATE info SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(UserError, match="journal schema version 99 is newer than this gpt4llm reads"):
        Journal(path)
