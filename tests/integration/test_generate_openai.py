"""``gpt4llm generate`` with an ``openai:`` teacher against a real HTTP server on loopback."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from support import read_jsonl, run_cli, write_jsonl
from support.openai_server import OpenAIServer, answer_for

from gpt4llm.schemas import record_id
from gpt4llm.templates import ALPACA


def instructions(n: int) -> list[dict]:
    return [{"instruction": f"Task number {i}: describe the number {i * 7}.",
             "input": f"context {i}" if i % 3 == 0 else ""} for i in range(n)]


def test_generate_writes_each_instructions_own_answer_with_paper_defaults(tmp_path, openai_server, openai_env):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(12))
    out = tmp_path / "out.jsonl"
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "-q", env=openai_env)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert [(x["instruction"], x["input"]) for x in rows] == [(x["instruction"], x["input"]) for x in instructions(12)]
    for row in rows:
        prompt = ALPACA.prompt(row["instruction"], row["input"])
        assert row["output"] == answer_for(prompt)
        assert row["id"] == record_id(row["instruction"], row["input"])
        m = row["meta"]
        assert (m["model"], m["backend"], m["finish_reason"]) == ("teacher", "openai", "stop")
        assert m["params"] == {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512}
        assert m["usage"] == {"prompt_tokens": len(prompt.split()), "completion_tokens": 2}
        assert m["created"].endswith("+00:00") and m["latency_s"] >= 0
    # The paper's call: ONE user message, no system prompt, temperature 1, top_p 1, 512 tokens.
    body = openai_server.requests[0]["body"]
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("teacher", 1.0, 1.0, 512)
    assert "wrote 12 records" in r.stdout and "12 made, 0 from the journal" in r.stdout

    # Same command again: no request, same output bytes.
    before = out.read_bytes()
    n = len(openai_server.requests)
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "-q", env=openai_env)
    assert r.returncode == 0 and len(openai_server.requests) == n and out.read_bytes() == before
    assert "0 made, 12 from the journal" in r.stdout

    # --format json: the released files' shape, same answers.
    j = tmp_path / "out.json"
    r = run_cli("generate", "-i", str(src), "-o", str(j), "--format", "json", "--journal", str(tmp_path / "out.jsonl.journal.sqlite"),
                "--teacher", "openai:teacher", "-q", env=openai_env)
    arr = json.loads(j.read_text())
    assert r.returncode == 0 and len(openai_server.requests) == n
    assert [list(x) for x in arr] == [["instruction", "input", "output"]] * 12
    assert [x["output"] for x in arr] == [x["output"] for x in rows]
    # The API key is in no file written.
    for p in tmp_path.iterdir():
        assert openai_server.api_key.encode() not in p.read_bytes(), p


def test_language_adds_a_system_message_and_truncation_is_flagged(tmp_path, openai_server, openai_env):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(3))
    out = tmp_path / "out.jsonl"
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--language", "zh",
                "--max-tokens", "1", "-q", env=openai_env)
    assert r.returncode == 0, r.stderr
    msgs = openai_server.requests[0]["body"]["messages"]
    assert msgs[0] == {"role": "system", "content": "Always respond in Chinese."} and msgs[1]["role"] == "user"
    rows = read_jsonl(out)
    assert all(x["meta"]["finish_reason"] == "length" and x["meta"]["language"] == "zh" for x in rows)
    assert "truncated at max_tokens: 3 (kept" in r.stdout
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--language", "zh",
                "--max-tokens", "1", "--drop-truncated", "-q", env=openai_env)
    assert r.returncode == 0 and read_jsonl(out) == [] and "(dropped 3)" in r.stdout


def test_a_failing_request_goes_to_errors_jsonl_and_is_retried_next_run(tmp_path):
    bad = instructions(6)[4]
    bad_prompt = ALPACA.prompt(bad["instruction"], bad["input"])
    fail = {"on": True}

    def fault(content):
        if fail["on"] and content == bad_prompt:
            return 400, {"error": {"message": "This model's maximum context length is exceeded",
                                   "type": "invalid_request_error"}}
        return None

    with OpenAIServer(fault=fault) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        src = write_jsonl(tmp_path / "in.jsonl", instructions(6))
        out = tmp_path / "out.jsonl"
        args = ("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "-q")
        r = run_cli(*args, env=env)
        assert r.returncode == 1, r.stderr
        rows = read_jsonl(out)
        assert len(rows) == 5 and bad["instruction"] not in {x["instruction"] for x in rows}
        assert all(x["output"] for x in rows)  # never an empty or default answer
        errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
        assert len(errors) == 1 and errors[0]["instruction"] == bad["instruction"]
        assert errors[0]["error"].startswith("HTTP 400") and "maximum context length" in errors[0]["error"]
        assert "failed: 1" in r.stdout
        n = len(server.requests)
        fail["on"] = False
        r = run_cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert server.contents()[n:] == [bad_prompt]  # only the failed one is asked again
        assert len(read_jsonl(out)) == 6 and not (tmp_path / "out.jsonl.errors.jsonl").exists()


KILL_ROUND = 240


def test_kill_9_mid_run_then_same_command_completes_without_repeating_calls(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(KILL_ROUND))
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal.sqlite"
    with OpenAIServer(delay=0.03) as server:
        env = {**os.environ, "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        args = [sys.executable, "-m", "gpt4llm", "generate", "-i", str(src), "-o", str(out),
                "--teacher", "openai:teacher", "--concurrency", "4", "-q"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done_before: set[str] = set()
        deadline = time.time() + 120
        while time.time() < deadline:
            if journal.exists():
                try:
                    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                    done = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]
                    db.close()
                except sqlite3.OperationalError:
                    done = 0
                if done >= 60:
                    break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # killed before the end: no half-written output
        db = sqlite3.connect(journal)
        done_before = {json.loads(req)["messages"][0]["content"]
                       for (req,) in db.execute("SELECT request FROM calls WHERE status='ok'")}
        db.close()
        assert 60 <= len(done_before) < KILL_ROUND

        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        rows = read_jsonl(out)
        assert len(rows) == KILL_ROUND and len({x["id"] for x in rows}) == KILL_ROUND
        for row in rows:
            assert row["output"] == answer_for(ALPACA.prompt(row["instruction"], row["input"]))
        asked = Counter(server.contents())
        # Every key finished before the kill was asked exactly once, over both runs.
        assert all(asked[c] == 1 for c in done_before)
        # Only calls in flight at the kill can have been asked twice.
        assert sum(n - 1 for n in asked.values()) <= 4


def test_shards_partition_the_input(tmp_path, openai_server, openai_env):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(30))
    ids = []
    for i in range(3):
        out = tmp_path / f"shard{i}.jsonl"
        r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--shard", f"{i}/3", "-q",
                    env=openai_env)
        assert r.returncode == 0, r.stderr
        ids.append([x["id"] for x in read_jsonl(out)])
    assert sorted(sum(ids, [])) == sorted(record_id(x["instruction"], x["input"]) for x in instructions(30))
    assert all(5 <= len(part) <= 15 for part in ids)  # roughly a third each
    assert len(openai_server.requests) == 30  # every record answered exactly once across shards
    r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "x.jsonl"), "--shard", "3/3")
    assert r.returncode == 2 and "--shard 3/3: expected i/n with 0 <= i < n" in r.stderr
