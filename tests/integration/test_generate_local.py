"""``gpt4llm generate`` with local models: the embedded SmolLM2 and a tiny random checkpoint."""

import json

import pytest

from support import read_jsonl, run_cli, write_jsonl

from gpt4llm.stage import load_instructions, seeds_path


def test_bundled_seeds_cover_the_kinds_of_task():
    seeds = load_instructions("seeds")
    assert 35 <= len(seeds) <= 50
    with_input = sum(1 for s in seeds if s.input)
    assert 10 <= with_input <= len(seeds) - 10


def test_embedded_model_answers_seeds_and_resumes_from_the_journal(tmp_path):
    out = tmp_path / "out.jsonl"
    args = ("generate", "--limit", "6", "--max-tokens", "24", "--batch-size", "4", "-o", str(out), "-q")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    seeds = load_instructions("seeds")[:6]
    assert [x["instruction"] for x in rows] == [s.instruction for s in seeds]
    for row in rows:
        assert row["output"].strip()
        m = row["meta"]
        assert (m["model"], m["backend"]) == ("smollm2-135m-instruct", "local")
        assert m["finish_reason"] in ("stop", "length") and 0 < m["usage"]["completion_tokens"] <= 24
        assert m["usage"]["prompt_tokens"] > 20
    truncated = sum(x["meta"]["finish_reason"] == "length" for x in rows)
    assert f"truncated at max_tokens: {truncated} " in r.stdout and "6 made, 0 from the journal" in r.stdout
    before = out.read_bytes()
    r = run_cli(*args)
    assert r.returncode == 0 and "0 made, 6 from the journal" in r.stdout and out.read_bytes() == before


def test_batched_greedy_equals_unbatched_greedy(tmp_path):
    """Left padding and length-sorted batches must not change what the model says."""
    outs = {}
    for bs in (1, 4):
        out = tmp_path / f"bs{bs}.jsonl"
        r = run_cli("generate", "--limit", "5", "--max-tokens", "12", "--temperature", "0",
                    "--batch-size", str(bs), "-o", str(out), "-q")
        assert r.returncode == 0, r.stderr
        outs[bs] = [(x["id"], x["output"], x["meta"]["usage"]) for x in read_jsonl(out)]
    assert outs[1] == outs[4]


def test_checkpoint_dir_without_chat_template_gets_the_raw_prompt(tmp_path, tiny_checkpoint):
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "Name a colour."}, {"instruction": "Add.", "input": "2 3"}])
    out = tmp_path / "out.json"
    r = run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", f"local:{tiny_checkpoint}",
                "--max-tokens", "8", "-q")
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    assert [x["instruction"] for x in rows] == ["Name a colour.", "Add."] and list(rows[0]) == ["instruction", "input", "output"]
    # Random weights rarely stop: the answers run to max_tokens and are kept, as the paper kept its.
    assert "failed: 0" in r.stdout
