"""Every bad-input case of ``generate``: one line naming what and where, exit 2, no traceback,
and no file written (output, errors file or journal)."""

import socket

import pytest

from support import run_cli, write_jsonl

GOOD = '{"instruction": "Say hi."}\n'


def check_refused(r, tmp_path, *fragments, inputs=("in.jsonl", "in.json")):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in inputs) == []
    return lines[0]


CASES = {
    "malformed jsonl": ("in.jsonl", GOOD + '{"instruction": "b"\n', ["in.jsonl:2:", "malformed JSON"]),
    "malformed json array": ("in.json", '[\n {"instruction": "a"},\n {"instruction": ]\n', ["in.json:3:", "malformed JSON"]),
    "no instruction": ("in.jsonl", GOOD + '{"input": "x"}\n', ["in.jsonl:2:", "field 'instruction' is missing"]),
    "empty instruction": ("in.jsonl", GOOD + GOOD.replace("Say hi.", "") , ["in.jsonl:2:", "field 'instruction' is empty"]),
    "non-string field": ("in.jsonl", GOOD + '{"instruction": "b", "input": 42}\n', ["in.jsonl:2:", "'input' must be a string, got int"]),
    "non-string instruction": ("in.json", '[{"instruction": ["a"]}]', ["in.json:1:", "'instruction' must be a string, got list"]),
    "duplicate ids": ("in.jsonl", GOOD + '{"instruction": "x"}\n' + GOOD, ["in.jsonl:3:", "duplicate id", "in.jsonl:1", "--dedupe"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_records(tmp_path, case):
    name, content, fragments = CASES[case]
    (tmp_path / name).write_text(content, encoding="utf-8")
    r = run_cli("generate", "-i", str(tmp_path / name), "-o", str(tmp_path / "out.jsonl"))
    check_refused(r, tmp_path, *fragments)


def test_non_utf8_bytes(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(GOOD.encode() + b'{"instruction": "na\xefve"}\n')
    r = run_cli("generate", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    check_refused(r, tmp_path, "in.jsonl:2:", "not valid UTF-8", "re-encode")


def test_missing_input_file(tmp_path):
    r = run_cli("generate", "-i", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    check_refused(r, tmp_path, "nope.jsonl: file not found")


def test_unknown_model_form_lists_the_valid_forms(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a"}])
    r = run_cli("generate", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--teacher", "gpt-4")
    line = check_refused(r, tmp_path, "--teacher 'gpt-4': unknown model form")
    assert "local:PATH" in line and "openai:MODEL" in line


def test_openai_without_a_key_says_so_before_any_request(tmp_path, openai_server):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a"}])
    r = run_cli("generate", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:gpt-4",
                env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": openai_server.url})
    check_refused(r, tmp_path, "needs an API key", "OPENAI_API_KEY")
    assert openai_server.requests == []


def test_wrong_key_stops_the_run(tmp_path, openai_server):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a"}, {"instruction": "b"}])
    r = run_cli("generate", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:gpt-4",
                env={"OPENAI_API_KEY": "sk-wrong", "OPENAI_BASE_URL": openai_server.url})
    check_refused(r, tmp_path, "API key was refused", "HTTP 401")


def test_unreachable_base_url_is_named(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/v1"
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "a"}])
    r = run_cli("generate", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--teacher", "openai:gpt-4",
                "--base-url", url, env={"OPENAI_API_KEY": "k"})
    check_refused(r, tmp_path, f"cannot reach {url} after retries")


def test_debug_shows_the_traceback(tmp_path):
    r = run_cli("generate", "-i", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "UserError" in r.stderr
