"""The hardened ``openai`` backend against a fault-injecting OpenAI-compatible server on loopback:
429 + Retry-After, 500, answers slower than the timeout, dropped connections, malformed JSON;
the budget cap; the dry run; Azure OpenAI's URL and header shapes."""

import json
from collections import Counter

import pytest

from support import read_jsonl, run_cli, write_jsonl
from support.openai_server import Fault, OpenAIServer, answer_for

from gpt4llm.templates import ALPACA

FAST = ("--retry-backoff", "0.02", "--timeout", "1", "-q")


def instructions(n: int) -> list[dict]:
    return [{"instruction": f"Describe item {i} in one sentence.", "input": ""} for i in range(n)]


def prompt_of(rec: dict) -> str:
    return ALPACA.prompt(rec["instruction"], rec["input"])


# Per instruction i: which faults its first attempts meet (bounded), then a good answer.
PLAN = {
    0: [Fault("status", 429, headers={"Retry-After": "0.1"})],
    1: [Fault("status", 500), Fault("status", 503)],
    2: [Fault("slow", delay=2.5)],
    3: [Fault("drop")],
    4: [Fault("malformed")],
    5: [],
}


def test_every_record_completes_through_every_kind_of_fault(tmp_path):
    recs = instructions(36)
    faults = {prompt_of(r): PLAN[i % 6] for i, r in enumerate(recs)}

    def fault(content, attempt):
        plan = faults[content]
        return plan[attempt - 1] if attempt <= len(plan) else None

    with OpenAIServer(fault=fault) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        src = write_jsonl(tmp_path / "in.jsonl", recs)
        out = tmp_path / "out.jsonl"
        args = ("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--concurrency", "8", *FAST)
        r = run_cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        rows = read_jsonl(out)
        assert len(rows) == 36
        for row in rows:  # the right text for the right instruction
            assert row["output"] == answer_for(prompt_of(row))
        asked = Counter(server.contents())
        for rec in recs:  # each retried exactly as often as it failed: bounded, nothing extra
            assert asked[prompt_of(rec)] == len(faults[prompt_of(rec)]) + 1, rec
        n = len(server.requests)
        r = run_cli(*args, env=env)
        assert r.returncode == 0 and len(server.requests) == n  # completed keys are never asked again
    for p in tmp_path.iterdir():
        assert b"test-key" not in p.read_bytes(), p


def test_a_429_pauses_the_whole_run_for_retry_after(tmp_path):
    recs = instructions(12)
    first = prompt_of(recs[0])

    def fault(content, attempt):
        if content == first and attempt == 1:
            return Fault("status", 429, headers={"retry-after-ms": "600"},
                         body={"error": {"message": "Rate limit reached", "type": "requests"}})
        return None

    with OpenAIServer(fault=fault, delay=0.05) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        src = write_jsonl(tmp_path / "in.jsonl", recs)
        r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:teacher",
                    "--concurrency", "4", *FAST, env=env)
        assert r.returncode == 0, r.stderr
        t0 = min(x["time"] for x in server.requests if x["content"] == first)
        # The 429 comes back ~0.05 s after t0. Requests already in flight finish; then NOBODY
        # sends until Retry-After (0.6 s) has passed: the whole run waits, not one request.
        assert not [x for x in server.requests if t0 + 0.15 < x["time"] < t0 + 0.6]
        assert any(x["time"] >= t0 + 0.6 for x in server.requests)
        assert len(server.requests) == 13


def test_a_400_fails_only_its_request_and_401_404_stop_the_run(tmp_path):
    recs = instructions(6)
    bad = prompt_of(recs[2])
    with OpenAIServer(fault=lambda c: (400, {"error": {"message": "Invalid prompt", "type": "invalid_request_error"}})
                      if c == bad else None) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        src = write_jsonl(tmp_path / "in.jsonl", recs)
        r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:teacher", *FAST, env=env)
        assert r.returncode == 1
        assert Counter(server.contents())[bad] == 1  # a 400 is not retried
        err = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
        assert [e["instruction"] for e in err] == [recs[2]["instruction"]] and "HTTP 400: Invalid prompt" in err[0]["error"]
    with OpenAIServer(fault=lambda c: (404, {"error": {"message": "The model `nope` does not exist",
                                                       "type": "invalid_request_error"}})) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "o2.jsonl"), "--teacher", "openai:nope", *FAST, env=env)
        assert r.returncode == 2 and "not found (HTTP 404: The model `nope` does not exist)" in r.stderr
        assert not (tmp_path / "o2.jsonl").exists()


def test_max_usd_stops_before_the_cap_and_a_higher_cap_continues(tmp_path, openai_server, openai_env):
    # $1 per output token, max_tokens 5: each request reserves up to $5 and really costs $2.
    recs = instructions(20)
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "out.jsonl"
    base = ("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--max-tokens", "5",
            "--price-in", "0", "--price-out", "1000000", "--concurrency", "4", *FAST)
    r = run_cli(*base, "--max-usd", "21", env=openai_env)
    assert r.returncode == 3, r.stderr
    assert "budget reached" in r.stderr and "re-run with a higher --max-usd" in r.stderr
    rows = read_jsonl(out)
    spent = sum(x["meta"]["cost_usd"] for x in rows)
    assert spent <= 21 and len(rows) == len(openai_server.requests) and 0 < len(rows) < 20
    assert not (tmp_path / "out.jsonl.errors.jsonl").exists()  # not sent is not failed
    n = len(openai_server.requests)
    r = run_cli(*base, "--max-usd", "100", env=openai_env)
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(out)) == 20 and len(openai_server.requests) == n + (20 - len(rows))
    assert "cost $40.0000" in r.stdout


def test_max_usd_waits_for_calls_in_flight_and_uses_most_of_the_cap(tmp_path):
    # The case: 4 in flight, 512 max tokens, a $0.10 cap; each call reserves its worst case
    # (about $0.013: 512 tokens at $25 per 1M, plus the prompt's bytes at $1 per 1M) and really costs
    # about $0.0023 (90 completion tokens). The old rule stopped after ~21 calls (under half the cap).
    import random

    rng = random.Random(7)
    recs = instructions(60)
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "out.jsonl"
    with OpenAIServer(delay=lambda: rng.uniform(0.0, 0.05), reply=lambda body: ("ok", {"completion_tokens": 90})) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:teacher", "--max-tokens", "512",
                    "--concurrency", "4", "--price-in", "1", "--price-out", "25", "--max-usd", "0.10", *FAST, env=env)
        assert r.returncode == 3, r.stderr
        rows = read_jsonl(out)
        spent = sum(x["meta"]["cost_usd"] for x in rows)
        assert 0.075 <= spent <= 0.10, spent
        assert len(rows) == len(server.requests) < 60


def test_dry_run_makes_no_request_and_needs_no_key(tmp_path, openai_server):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(50))
    out = tmp_path / "out.jsonl"
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:gpt-4", "--dry-run",
                "--rpm", "10", "--tpm", "10000", env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": openai_server.url})
    assert r.returncode == 0, r.stderr
    assert openai_server.requests == [] and not out.exists() and list(tmp_path.iterdir()) == [src]
    assert "requests: 50 (0 already in the journal, 50 to send)" in r.stdout
    assert "up to 25,600 completion" in r.stdout  # 50 x 512
    # gpt-4 at $30/$60 per 1M: 25,600 output tokens cost at most $1.54
    assert "up to $1.54 output" in r.stdout and "table:gpt-4" in r.stdout
    # 50 requests at 10/min = 5 min; (prompt + 25,600) tokens at 10,000/min > 2.5 min
    assert "about 5.0 min at --rpm 10, --tpm 10000" in r.stdout


@pytest.mark.parametrize("flag, value, message", [
    ("--rpm", "0", "--rpm 0.0: must be a positive number per minute"),
    ("--tpm", "-5", "--tpm -5.0: must be a positive number per minute"),
    ("--max-usd", "0", "--max-usd 0.0: must be a positive number of dollars"),
    ("--max-usd", "nan", "--max-usd nan: must be a positive number of dollars"),
])
def test_bad_limits_get_a_clear_error(tmp_path, openai_env, flag, value, message):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(2))
    r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:teacher",
                flag, value, env=openai_env)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {message}"


def test_max_usd_without_a_known_price_is_refused(tmp_path, openai_env):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(2))
    r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:my-vllm-model",
                "--max-usd", "5", env=openai_env)
    assert r.returncode == 2 and "no price is known for my-vllm-model" in r.stderr


def test_azure_openai_deployment_and_api_version(tmp_path, openai_server):
    src = write_jsonl(tmp_path / "in.jsonl", instructions(2))
    base = openai_server.url.removesuffix("/v1")
    r = run_cli("generate", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:my-gpt4-deployment",
                "--base-url", base, "--api-version", "2024-06-01", *FAST,
                env={"AZURE_OPENAI_API_KEY": openai_server.api_key, "OPENAI_API_KEY": ""})
    assert r.returncode == 0, r.stderr
    req = openai_server.requests[0]
    assert req["path"] == "/openai/deployments/my-gpt4-deployment/chat/completions?api-version=2024-06-01"
    assert [x["output"] for x in read_jsonl(tmp_path / "out.jsonl")] == [answer_for(prompt_of(x)) for x in instructions(2)]
