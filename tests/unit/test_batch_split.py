"""Batch API request files: one endpoint per file, split by line count and by bytes."""

import json

import pytest

from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.batch import result_from_line, write_request_files
from gpt4llm.errors import UserError


def chat(i: int, size: int = 10, **params) -> Request:
    return Request(params=GenParams(**params), messages=[{"role": "user", "content": f"{i} " + "x" * size}],
                   key=f"k{i:05d}")


def lines(f) -> list[dict]:
    return [json.loads(x) for x in f.path.read_text(encoding="utf-8").splitlines()]


def test_split_by_count_keeps_order_and_writes_openai_lines(tmp_path):
    reqs = [chat(i) for i in range(7)]
    files = write_request_files(reqs, "gpt-4o", tmp_path, max_requests=3)
    assert [len(f.keys) for f in files] == [3, 3, 1]
    assert [k for f in files for k in f.keys] == [r.key for r in reqs]
    first = lines(files[0])[0]
    assert first == {"custom_id": "k00000", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "gpt-4o", "messages": reqs[0].messages, "temperature": 1.0, "top_p": 1.0,
                              "max_tokens": 512}}
    for f in files:
        assert [x["custom_id"] for x in lines(f)] == f.keys and f.path.stat().st_size == f.bytes
    seeded = write_request_files([chat(0, seed=7, temperature=0.5)], "m", tmp_path / "s")
    assert lines(seeded[0])[0]["body"] | {} == {"model": "m", "messages": chat(0).messages, "temperature": 0.5,
                                                "top_p": 1.0, "max_tokens": 512, "seed": 7}


def test_split_by_bytes_never_passes_the_cap(tmp_path):
    reqs = [chat(i, size=100 + 37 * i) for i in range(9)]
    one = write_request_files(reqs, "m", tmp_path / "all")
    assert len(one) == 1
    sizes = [len(json.dumps(x, ensure_ascii=False, separators=(",", ":")).encode()) + 1 for x in lines(one[0])]
    cap = sizes[-1] + sizes[-2]  # the two largest lines fit together
    files = write_request_files(reqs, "m", tmp_path / "split", max_bytes=cap)
    assert len(files) >= -(-sum(sizes) // cap) and len(files) > 1
    assert all(f.bytes <= cap and f.path.stat().st_size == f.bytes for f in files)
    assert [k for f in files for k in f.keys] == [r.key for r in reqs]
    # Greedy: a file is closed only when the next line would not fit.
    first_line = {f.keys[0]: sizes[[r.key for r in reqs].index(f.keys[0])] for f in files}
    assert all(a.bytes + first_line[b.keys[0]] > cap for a, b in zip(files, files[1:]))
    # Both limits at once: the count cap bites first where lines are small.
    both = write_request_files(reqs, "m", tmp_path / "both", max_requests=2, max_bytes=cap)
    assert all(len(f.keys) <= 2 and f.bytes <= cap for f in both)


def test_a_request_larger_than_the_cap_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"request k00001 is [\d,]+ bytes as a Batch API line, over the 500-byte"):
        write_request_files([chat(0), chat(1, size=1000)], "m", tmp_path, max_bytes=500)


def test_prompt_requests_go_to_their_own_file_and_endpoint(tmp_path):
    reqs = [chat(0), Request(params=GenParams(), prompt="Once upon", key="p1"), chat(2)]
    files = write_request_files(reqs, "m", tmp_path)
    assert [(f.endpoint, f.keys) for f in files] == [("/v1/chat/completions", ["k00000", "k00002"]),
                                                     ("/v1/completions", ["p1"])]
    assert lines(files[1])[0]["body"]["prompt"] == "Once upon"
    azure = write_request_files(reqs[:1], "deployment", tmp_path / "az", url_prefix="")
    assert lines(azure[0])[0]["url"] == azure[0].endpoint == "/chat/completions"


def test_the_alpaca_52002_need_two_files(tmp_path):
    reqs = [Request(params=GenParams(), messages=[{"role": "user", "content": "i"}], key=f"{i:064x}")
            for i in range(52_002)]
    files = write_request_files(reqs, "gpt-4", tmp_path)
    assert [len(f.keys) for f in files] == [50_000, 2_002]


def test_output_and_error_lines_become_results():
    ok = {"custom_id": "a", "error": None, "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}}}}
    r = result_from_line(ok, chat=True, latency=3.0)
    assert (r.ok, r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, r.latency_s) == \
        (True, "hi", "stop", 5, 1, 3.0)
    err = result_from_line({"custom_id": "b", "response": None,
                            "error": {"code": "server_error", "message": "boom"}}, True, 0)
    assert err.error == "batch error server_error: boom"
    status = result_from_line({"custom_id": "c", "error": None, "response": {
        "status_code": 400, "body": {"error": {"message": "max_tokens is too large"}}}}, True, 0)
    assert status.error == "HTTP 400: max_tokens is too large"
    empty = result_from_line({"custom_id": "d", "response": {"status_code": 200, "body": {"choices": []}}}, True, 0)
    assert not empty.ok and "malformed" in empty.error
