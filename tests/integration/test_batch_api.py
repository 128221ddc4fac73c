"""The Batch API path against a fake Batch endpoint on loopback: splitting, polling,
reattaching after a kill, resubmitting only failed ids, the synchronous fallback."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from support import read_jsonl, run_cli, write_jsonl
from support.batch_server import BatchServer
from support.openai_server import answer_for

from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.batch import request_line, split_lines
from gpt4llm.errors import UserError
from gpt4llm.templates import ALPACA


def recs(n):
    return [{"instruction": f"Describe item {i}.", "input": ""} for i in range(n)]


def test_split_by_count_and_by_bytes():
    lines = [request_line("m", Request(params=GenParams(), messages=[{"role": "user", "content": "x" * 10}], key=str(i)))[1]
             for i in range(7)]
    assert [len(f) for f in split_lines(lines, max_requests=3)] == [3, 3, 1]
    one = len(lines[0])
    assert [len(f) for f in split_lines(lines, max_bytes=2 * one + 1)] == [2, 2, 2, 1]
    with pytest.raises(UserError, match="over the 10-byte file cap"):
        split_lines(lines, max_bytes=10)
    # 52,002 Alpaca instructions need two files at OpenAI's 50,000 limit.
    assert [len(f) for f in split_lines([b"x\n"] * 52_002)] == [50_000, 2_002]


@pytest.fixture
def batch_server():
    s = BatchServer()
    yield s
    s.close()


def gen_args(tmp_path, n, *extra):
    src = write_jsonl(tmp_path / "in.jsonl", recs(n))
    return ("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:gpt-4o-mini", "--batch-api",
            "--poll-interval", "0.02", "-q", *extra)


def test_full_path_with_files_split_and_every_answer_in_place(tmp_path, batch_server):
    env = {"OPENAI_API_KEY": batch_server.api_key, "OPENAI_BASE_URL": batch_server.url,
           "GPT4LLM_BATCH_MAX_REQUESTS": "4"}
    r = run_cli(*gen_args(tmp_path, 10), env=env)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == 10 and all(x["output"] == answer_for(ALPACA.prompt(x["instruction"])) for x in rows)
    assert [len(ids) for ids in batch_server.batch_inputs()] == [4, 4, 2]
    # Batch prices: gpt-4o-mini $0.15/$0.60 per 1M at half price: 10 x (10 in + 2 out) tokens.
    assert rows[0]["meta"]["cost_usd"] == pytest.approx((10 * 0.15 + 2 * 0.6) / 1e6 * 0.5)
    db = sqlite3.connect(tmp_path / "out.jsonl.journal.sqlite")
    assert [s for (s,) in db.execute("SELECT status FROM batches")] == ["completed"] * 3
    r = run_cli(*gen_args(tmp_path, 10), env=env)
    assert r.returncode == 0 and len(batch_server.batches) == 3  # a re-run creates nothing


def test_only_failed_ids_are_resubmitted_then_fallback(tmp_path):
    bad = {ALPACA.prompt(f"Describe item {i}.") for i in (1, 4)}
    server = BatchServer(fail=lambda content, attempt: content in bad)  # always fail in batches
    try:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        r = run_cli(*gen_args(tmp_path, 6), env=env)
        assert r.returncode == 1  # without fallback the two stay failed, listed
        inputs = server.batch_inputs()
        assert len(inputs) == 3 and len(inputs[0]) == 6 and len(inputs[1]) == len(inputs[2]) == 2  # 2 resubmit rounds
        assert len(read_jsonl(tmp_path / "out.jsonl.errors.jsonl")) == 2
        r = run_cli(*gen_args(tmp_path, 6, "--batch-fallback"), env=env)
        assert r.returncode == 0, r.stderr
        assert sorted(server.sync_requests) == sorted(bad)  # only the stragglers went synchronously
        assert len(read_jsonl(tmp_path / "out.jsonl")) == 6
    finally:
        server.close()


def test_kill_after_create_then_rerun_reattaches(tmp_path):
    server = BatchServer(polls=10**9)  # never finishes while the first run polls
    try:
        env = {**os.environ, "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url, "COLUMNS": "200"}
        args = [sys.executable, "-m", "gpt4llm", *gen_args(tmp_path, 5)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not server.batches and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(server.batches) == 1 and not (tmp_path / "out.jsonl").exists()
        server.polls = 1
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert len(server.batches) == 1  # reattached, no duplicate batch
        assert len(read_jsonl(tmp_path / "out.jsonl")) == 5
    finally:
        server.close()


def test_expired_batch_ids_are_resubmitted(tmp_path):
    server = BatchServer(expire=True)
    try:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        r = run_cli(*gen_args(tmp_path, 3), env=env)
        assert r.returncode == 1 and len(server.batches) == 3  # first try + 2 resubmits, all expired
        assert "expired" in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")[0]["error"]
        server.expire = False
        r = run_cli(*gen_args(tmp_path, 3), env=env)
        assert r.returncode == 0 and len(read_jsonl(tmp_path / "out.jsonl")) == 3
    finally:
        server.close()
