"""The Batch API backend against a fake Batch endpoint on loopback (``support.batch_server``),
driven through ``calls.run_calls`` with real journal keys: upload, create, poll, download;
only failed ids resubmitted; the synchronous fallback; reattaching after a kill -9 at each
point; expired batches; the budget; and the CLI's ``--batch-api``."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import read_jsonl, run_cli, write_jsonl
from support.batch_server import BatchServer
from support.openai_server import answer_for

from gpt4llm.backends.base import FatalBackendError, GenParams
from gpt4llm.backends.batch import OpenAIBatchBackend
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.pricing import Prices
from gpt4llm.calls import assign_keys, run_calls
from gpt4llm.generate import build_requests, load_instructions

MODEL = "gpt-4o-mini"
TESTS = Path(__file__).resolve().parents[1]


def records(tmp_path, n):
    rows = [{"instruction": f"Describe item {i} in a sentence.", "input": f"context {i}" if i % 3 == 0 else ""}
            for i in range(n)]
    return load_instructions(str(write_jsonl(tmp_path / f"in{n}.jsonl", rows)))


def backend(server, **kw):
    return OpenAIBatchBackend(MODEL, base_url=server.url, api_key=server.api_key, poll_interval=0.05, quiet=True, **kw)


def requests_for(recs):
    """The requests with the keys any openai: backend of MODEL gives them (to aim faults)."""
    reqs = build_requests(recs, GenParams())
    assign_keys(SimpleNamespace(kind="openai", model=MODEL), reqs)
    return reqs


def run(be, path, recs, **kw):
    reqs = build_requests(recs, GenParams())
    with Journal(path) as journal:
        stats = run_calls(be, journal, reqs, quiet=True, **kw)
    return reqs, stats


def content(req):
    return req.messages[-1]["content"]


def batch_rows(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT batch_id, status, round, keys FROM batches ORDER BY created, rowid").fetchall()
    finally:
        db.close()


@pytest.fixture
def server():
    with BatchServer() as s:
        yield s


def test_full_path_every_record_gets_its_own_answer_at_half_price(tmp_path, server):
    recs = records(tmp_path, 7)
    j = tmp_path / "j.sqlite"
    be = backend(server, max_requests_per_file=3)
    reqs, stats = run(be, j, recs, prices=Prices(2.0, 8.0))
    assert (stats.ok, stats.failed, stats.called) == (7, 0, 7)
    # Split by count, uploaded, one batch per file, every line valid.
    assert len(server.uploads) == 3 and [len(server.batch_ids(i)) for i in range(3)] == [3, 3, 1]
    assert server.invalid == [] and be.created == server.order
    assert [x for i in range(3) for x in server.batch_ids(i)] == [r.key for r in reqs]
    line = server.input_lines(0)[0]
    assert line["url"] == "/v1/chat/completions" and line["body"] == {
        "model": MODEL, "messages": reqs[0].messages, "temperature": 1.0, "top_p": 1.0, "max_tokens": 512}
    for r in reqs:
        e = stats.entries[r.key]
        assert e.text == answer_for(content(r)) and e.finish_reason == "stop"
        assert (e.prompt_tokens, e.completion_tokens) == (len(content(r).split()), 2)
        assert e.cost_usd == pytest.approx((e.prompt_tokens * 2.0 + 2 * 8.0) / 1e6 * 0.5)  # Batch API: half
    # The batch ids are in the journal file, each batch collected, each key in exactly one.
    rows = batch_rows(j)
    assert [r[0] for r in rows] == server.order and {r[1] for r in rows} == {"collected"}
    assert sorted(k for r in rows for k in json.loads(r[3])) == sorted(r.key for r in reqs)
    # A re-run makes no call: nothing uploaded, no batch created, nothing polled.
    gets = server.gets
    _, again = run(backend(server), j, recs)
    assert (again.cached, again.called, len(server.uploads), len(server.order), server.gets) == (7, 0, 3, 3, gets)
    assert server.api_key.encode() not in j.read_bytes()


def test_only_failed_ids_are_resubmitted_and_the_rest_stay_failed(tmp_path, server):
    recs = records(tmp_path, 6)
    keys = [r.key for r in requests_for(recs)]
    plan = {keys[1]: lambda a: "error" if a == 1 else None,      # error-file line once
            keys[4]: lambda a: 500 if a <= 2 else None,          # HTTP 500 twice
            keys[5]: lambda a: 400}                              # always refused
    server.fault = lambda cid, attempt: plan[cid](attempt) if cid in plan else None
    _, stats = run(backend(server), tmp_path / "j.sqlite", recs)
    assert [server.batch_ids(i) for i in range(len(server.order))] == [
        keys, [keys[1], keys[4], keys[5]], [keys[4], keys[5]]]  # max_resubmits=2: three rounds
    assert (stats.ok, stats.failed, stats.called) == (5, 1, 6)  # each key yielded once
    bad = stats.entries[keys[5]]
    assert bad.error == "HTTP 400: injected status 400 (after 3 batch submissions)" and bad.attempts == 1
    assert server.sync_requests == [] and server.attempts[keys[0]] == 1
    # The journal retries the failed one next run, alone, in a new batch.
    server.fault = None
    _, stats = run(backend(server), tmp_path / "j.sqlite", recs)
    assert stats.ok == 6 and len(server.order) == 4 and server.batch_ids(3) == [keys[5]]


def test_fallback_sends_the_stragglers_synchronously_at_full_price(tmp_path, server):
    recs = records(tmp_path, 4)
    keys = [r.key for r in requests_for(recs)]
    server.fault = lambda cid, attempt: "error" if cid == keys[2] else None
    be = backend(server, max_resubmits=1, fallback=True)
    reqs, stats = run(be, tmp_path / "j.sqlite", recs, prices=Prices(2.0, 8.0))
    assert stats.ok == 4 and len(server.order) == 2 and server.batch_ids(1) == [keys[2]]
    assert [s["body"]["messages"] for s in server.sync_requests] == [reqs[2].messages] and be.sent_sync == 1
    e = stats.entries[keys[2]]
    assert e.text == answer_for(content(reqs[2]))
    assert e.cost_usd == pytest.approx((e.prompt_tokens * 2.0 + 2 * 8.0) / 1e6)  # synchronous: full price
    assert stats.entries[keys[0]].cost_usd == pytest.approx((stats.entries[keys[0]].prompt_tokens * 2.0 + 16) / 2e6)


@pytest.mark.parametrize("outcome, rerun", [("expire", 3), ("cancel", 3), ("fail", 5)])
def test_unfinished_ids_of_an_expired_cancelled_or_failed_batch_are_resubmitted(tmp_path, server, outcome, rerun):
    recs = records(tmp_path, 5)
    getattr(server, outcome).add(0)
    server.expire_done = 2  # an expired or cancelled batch still returns what it finished
    reqs, stats = run(backend(server), tmp_path / "j.sqlite", recs)
    assert stats.ok == 5 and len(server.order) == 2
    assert server.batch_ids(1) == [r.key for r in reqs][5 - rerun:]
    assert all(stats.entries[r.key].text == answer_for(content(r)) for r in reqs)
    assert max(server.attempts.values()) == 1  # no request ran twice
    # With no resubmission left, the reason names the batch's fate.
    getattr(server, outcome).add(2)
    _, stats = run(backend(server, max_resubmits=0), tmp_path / "k.sqlite", recs)
    assert stats.failed == rerun and all(
        f"{server.order[2]} {outcome.replace('expire', 'expired').replace('cancel', 'cancelled').replace('fail', 'failed')}"
        in e.error for e in stats.entries.values() if not e.ok)


KILLABLE = r"""
import sys
from gpt4llm.backends.batch import OpenAIBatchBackend
from gpt4llm.backends.journal import Journal
from gpt4llm.backends.base import GenParams
from gpt4llm.calls import run_calls
from gpt4llm.generate import build_requests, load_instructions
url, key, journal, src = sys.argv[1:5]
be = OpenAIBatchBackend("gpt-4o-mini", base_url=url, api_key=key, poll_interval=0.05, max_requests_per_file=3)
with Journal(journal) as j:
    run_calls(be, j, build_requests(load_instructions(src), GenParams()), quiet=True)
"""


def start_and_kill(server, tmp_path, n, ready):
    """Run a batch job in a subprocess and SIGKILL it as soon as ``ready()`` holds."""
    src = tmp_path / f"in{n}.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, server.url, server.api_key, str(tmp_path / "j.sqlite"),
                             str(src)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the subprocess never got there"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def test_kill_during_polling_then_reruns_reattach_and_collect_everything(tmp_path, server):
    recs = records(tmp_path, 5)
    server.polls_to_complete = 10**9  # in flight until we say so
    start_and_kill(server, tmp_path, 5, lambda: len(server.order) == 2 and all(
        server.batches[b]["_polls"] >= 2 for b in server.order))
    j = tmp_path / "j.sqlite"
    assert [(r[0], r[1]) for r in batch_rows(j)] == [(b, "in_progress") for b in server.order]
    server.polls_to_complete = 1
    # A re-run for part of the keys (0, 1, 3) reattaches to both batches and creates none...
    be = backend(server, max_requests_per_file=3)
    reqs, stats = run(be, j, [recs[0], recs[1], recs[3]])
    assert stats.ok == 3 and len(server.order) == 2 and len(server.uploads) == 2
    assert be.reattached == server.order and be.created == []
    # ...and leaves both open, since keys 2 and 4 are still to collect.
    assert [r[1] for r in batch_rows(j)] == ["completed", "completed"]
    be = backend(server, max_requests_per_file=3)
    reqs, stats = run(be, j, recs)
    assert (stats.ok, stats.cached, stats.called) == (5, 3, 2) and len(server.order) == 2
    assert all(stats.entries[r.key].text == answer_for(content(r)) for r in reqs)
    assert [r[1] for r in batch_rows(j)] == ["collected", "collected"]
    assert max(server.attempts.values()) == 1


def test_kill_between_create_and_journal_write_finds_the_batch_again(tmp_path, server):
    recs = records(tmp_path, 4)
    server.hold_create.clear()  # the batch exists on the server; its id never reaches the client
    start_and_kill(server, tmp_path, 4, lambda: len(server.order) == 1)
    server.hold_create.set()
    j = tmp_path / "j.sqlite"
    assert [(r[0], r[1]) for r in batch_rows(j)] == [(None, "creating")]
    be = backend(server, max_requests_per_file=3)
    reqs, stats = run(be, j, recs)
    # Found by its gpt4llm_id metadata: keys 0-2 come from it; only key 3 needed a new batch.
    assert be.reattached == [server.order[0]] and len(server.order) == 2
    assert server.batch_ids(1) == [reqs[3].key]
    assert stats.ok == 4 and all(stats.entries[r.key].text == answer_for(content(r)) for r in reqs)
    assert [(r[0], r[1]) for r in batch_rows(j)] == [(b, "collected") for b in server.order]


def test_kill_before_the_batch_is_created_leaves_nothing_to_reattach(tmp_path, server):
    recs = records(tmp_path, 3)
    server.hold_create.clear()
    start_and_kill(server, tmp_path, 3, lambda: len(server.order) == 1)
    with server.lock:  # as if the process died before its create reached the server
        server.batches.pop(server.order.pop())
    server.hold_create.set()
    be = backend(server)
    _, stats = run(be, tmp_path / "j.sqlite", recs)
    assert stats.ok == 3 and be.reattached == [] and len(server.order) == 1
    assert [r[1] for r in batch_rows(tmp_path / "j.sqlite")] == ["abandoned", "collected"]


def test_crash_after_download_loses_no_result(tmp_path, server):
    recs = records(tmp_path, 5)
    j = tmp_path / "j.sqlite"

    class Crash(Exception):
        pass

    journal = Journal(j)
    real, seen = journal.record, Counter()

    def record(*a, **kw):  # the process dies after journaling two results of the downloaded batch
        if seen["n"] == 2:
            raise Crash
        seen["n"] += 1
        return real(*a, **kw)

    journal.record = record
    with pytest.raises(Crash):
        run_calls(backend(server), journal, build_requests(recs, GenParams()), quiet=True)
    journal.close()
    assert [r[1] for r in batch_rows(j)] == ["completed"]  # downloaded, not yet collected
    out = server.batches[server.order[0]]["output_file_id"]
    before = server.downloads[out]
    reqs, stats = run(backend(server), j, recs)
    assert (stats.ok, stats.cached, stats.called) == (5, 2, 3)
    assert len(server.order) == 1 and server.downloads[out] == before + 1  # fetched again, not resubmitted
    assert all(stats.entries[r.key].text == answer_for(content(r)) for r in reqs)
    assert [r[1] for r in batch_rows(j)] == ["collected"]


def test_budget_is_reserved_before_a_batch_is_created(tmp_path, server):
    from gpt4llm.backends.pricing import max_prompt_tokens

    recs = records(tmp_path, 5)
    prices = Prices(1000.0, 1000.0)  # x0.5: worst case (prompt bytes + 512 tokens) x $500 per 1M ~ $0.38 a request
    worst = [(max_prompt_tokens(r.messages, None) + 512) * 500 / 1e6 for r in requests_for(recs)]
    cap = sum(worst[:2]) + 0.5 * worst[2]  # room for the first two requests, not for a third
    _, stats = run(backend(server), tmp_path / "j.sqlite", recs, prices=prices, max_usd=cap)
    assert stats.budget_reached and stats.ok == 2 and stats.skipped == 3
    assert len(server.order) == 1 and len(server.batch_ids(0)) == 2
    assert stats.cost_usd <= cap
    _, stats = run(backend(server), tmp_path / "j.sqlite", recs, prices=prices, max_usd=5.0)
    assert stats.ok == 5 and len(server.order) == 2 and len(server.batch_ids(1)) == 3


def test_a_refused_key_is_one_fatal_line_and_nothing_is_recorded(tmp_path, server):
    be = OpenAIBatchBackend(MODEL, base_url=server.url, api_key="wrong", poll_interval=0.05, quiet=True)
    with pytest.raises(FatalBackendError, match="the API key was refused .*check OPENAI_API_KEY"):
        run(be, tmp_path / "j.sqlite", records(tmp_path, 2))
    assert server.order == [] and not (tmp_path / "j.sqlite").exists()


def test_cli_batch_api_with_fallback(tmp_path, server):
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"Name a colour, {i}.", "input": ""} for i in range(3)])
    out = tmp_path / "out.jsonl"
    recs = load_instructions(str(src))
    bad = requests_for(recs)[1].key
    server.fault = lambda cid, attempt: 500 if cid == bad else None
    env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
    args = ("generate", "-i", str(src), "-o", str(out), "--teacher", f"openai:{MODEL}", "--batch-api",
            "--poll-interval", "0.05", "-q")
    r = run_cli(*args, env=env)
    assert r.returncode == 1 and len(server.order) == 3  # the first batch and two resubmissions
    assert "after 3 batch submissions" in read_jsonl(out.with_name("out.jsonl.errors.jsonl"))[0]["error"]
    r = run_cli(*args, "--batch-fallback", env=env)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert [x["output"] for x in rows] == [answer_for(content(q)) for q in requests_for(recs)]
    assert len(server.sync_requests) == 1 and len(server.order) == 6
    # gpt-4o-mini at $0.15/$0.60 per 1M, half price through the Batch API.
    m = rows[0]["meta"]
    assert m["cost_usd"] == pytest.approx((m["usage"]["prompt_tokens"] * 0.15 + 2 * 0.6) / 2e6)
