import json

import pytest

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import AlpacaRecord


def records(path):
    return io.read_records(path, AlpacaRecord)


def test_json_array_records_know_their_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[\n  {"instruction": "a"},\n\n  {"instruction": "b",\n   "input": "c"}\n]\n')
    got = records(p)
    assert [(r.instruction, r.input) for r, _ in got] == [("a", ""), ("b", "c")]
    assert [w for _, w in got] == [f"{p}:2", f"{p}:4"]


def test_jsonl_and_parquet_and_bom(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes('\ufeff{"instruction": "é"}\n\n{"instruction": "b", "output": "o"}\n'.encode())
    got = records(p)
    assert [r.instruction for r, _ in got] == ["é", "b"] and got[1][1] == f"{p}:3"
    q = tmp_path / "a.parquet"
    io.write_records(q, [{"instruction": "x", "input": "y", "output": "z"}])
    assert [(r.instruction, r.input, r.output) for r, _ in records(q)] == [("x", "y", "z")]


@pytest.mark.parametrize("content, where, what", [
    ('{"instruction": "a"}\n{"instruction": "b",\n', ":2:", "malformed JSON"),
    ('[{"instruction": "a"},\n {"instruction": }]', ":2:", "malformed JSON"),
    ('[{"instruction": "a"}\n {"instruction": "b"}]', ":2:", "malformed JSON"),
    ('{"instruction": "a"}\n{"input": "b"}\n', ":2:", "field 'instruction' is missing"),
    ('{"instruction": "a"}\n{"instruction": ""}\n', ":2:", "field 'instruction' is empty"),
    ('{"instruction": "a"}\n{"instruction": "b", "input": 7}\n', ":2:", "field 'input' must be a string, got int"),
    ('[{"instruction": "a"},\n 5]', ":2:", "expected a JSON object"),
])
def test_bad_records_name_file_and_line(tmp_path, content, where, what):
    p = tmp_path / ("in.json" if content.startswith("[") else "in.jsonl")
    p.write_text(content)
    with pytest.raises(UserError) as e:
        records(p)
    assert str(e.value).startswith(f"{p}{where}") and what in str(e.value)


def test_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b'{"instruction": "a"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"in.jsonl:2: not valid UTF-8 \(byte 0xe9\)"):
        records(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        records(tmp_path / "nope.json")
    with pytest.raises(UserError, match="is a directory"):
        records(tmp_path)


def test_hf_source_gives_a_clear_error_when_the_hub_is_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"hf:nobody/no-such-dataset: cannot load the dataset"):
        records("hf:nobody/no-such-dataset")


def test_json_writer_has_the_released_files_shape(tmp_path):
    p = tmp_path / "out.json"
    rows = [{"instruction": "写", "input": "", "output": "x"}]
    io.write_records(p, rows, "json")
    text = p.read_text(encoding="utf-8")
    assert text == '[\n    {\n        "instruction": "写",\n        "input": "",\n        "output": "x"\n    }\n]'
    assert json.loads(text) == rows


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        io.write_records(target, rows())
    assert list(tmp_path.iterdir()) == []
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("new partial")
            raise RuntimeError("crash")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_unknown_format_is_refused():
    with pytest.raises(UserError, match="--format csv: unknown format"):
        io.format_for("x.jsonl", "csv")
