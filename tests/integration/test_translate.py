"""``gpt4llm translate``: field mapping, protected spans, resume; end to end on the embedded model."""

import re

from support import read_jsonl, run_cli, write_jsonl
from support.openai_server import OpenAIServer

from gpt4llm.schemas import record_id


def fake_translator(content):
    text = re.search(r"<text>\n(.*)\n</text>", content, re.S).group(1)
    if "drop the number" in text:
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "译文：没有数字"},
                                  "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Translation: 中文 {text}"},
                              "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}


def test_translate_maps_fields_keeps_spans_and_resumes(tmp_path):
    recs = [{"instruction": "Sum the numbers.", "input": "3 and 4"}, {"instruction": "Say hi to {name}.", "input": ""},
            {"instruction": "Please drop the number 7.", "input": ""}]
    src = write_jsonl(tmp_path / "en.jsonl", recs)
    out = tmp_path / "zh.jsonl"
    with OpenAIServer(fault=fake_translator) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.url}
        args = ("translate", "--to", "zh", "-i", str(src), "-o", str(out), "--translator", "openai:gpt-3.5-turbo", "-q")
        r = run_cli(*args, env=env)
        assert r.returncode == 1, r.stderr  # one record lost its number
        rows = read_jsonl(out)
        assert [(x["instruction"], x["input"]) for x in rows] == [("中文 Sum the numbers.", "中文 3 and 4"),
                                                                  ("中文 Say hi to {name}.", "")]
        assert [x["meta"]["source_id"] for x in rows] == [record_id(**recs[0]), record_id(recs[1]["instruction"])]
        assert rows[0]["id"] == record_id("中文 Sum the numbers.", "中文 3 and 4") and rows[0]["meta"]["language"] == "zh"
        assert "Chinese" in server.requests[0]["content"] and len(server.requests) == 4  # 3 instructions + 1 input
        err = read_jsonl(tmp_path / "zh.jsonl.errors.jsonl")
        assert err[0]["instruction"] == "Please drop the number 7." and "lost protected span '7'" in err[0]["error"]
        n = len(server.requests)
        r = run_cli(*args, env=env)
        assert len(server.requests) == n  # resumed from the journal: no call repeated


def test_translate_then_generate_in_chinese_on_the_embedded_model(tmp_path):
    out = tmp_path / "zh.jsonl"
    r = run_cli("translate", "--to", "zh", "--limit", "2", "-o", str(out), "-q")
    assert r.returncode in (0, 1), r.stderr  # a 135M model may damage a span; then the record is listed, not written
    again = run_cli("translate", "--to", "zh", "--limit", "2", "-o", str(out), "-q")
    assert again.returncode == r.returncode and "model calls: 0 made" in again.stdout  # resumed from the journal
    rows = read_jsonl(out)
    errors = read_jsonl(tmp_path / "zh.jsonl.errors.jsonl") if (tmp_path / "zh.jsonl.errors.jsonl").exists() else []
    assert len(rows) + len(errors) == 2
    if rows:
        ans = tmp_path / "ans.jsonl"
        r = run_cli("generate", "-i", str(out), "-o", str(ans), "--language", "zh", "--max-tokens", "8", "-q")
        assert r.returncode == 0, r.stderr
        assert all(x["meta"]["language"] == "zh" for x in read_jsonl(ans))
