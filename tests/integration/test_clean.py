"""``gpt4llm clean`` on the command line: what it prints and writes, and bad input as one line, exit
2 and no output file."""

import json

import pytest
from support import read_jsonl, run_cli, write_jsonl

GOOD = [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, sleep, walk."},
        {"instruction": "give three tips for staying healthy", "input": "", "output": "Sleep. Walk. Eat."},
        {"instruction": "How can I improve my time management skills?", "input": "", "output": "Plan your day."},
        {"instruction": "Write a haiku about rain.", "input": "", "output": "As an AI language model, I cannot."}]


def test_clean_prints_counts_and_writes_kept_removed_and_summary(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "out.jsonl"
    r = run_cli("clean", str(src), "-o", str(out), env={"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert "kept 1 of 4 records (3 removed)" in r.stdout
    assert "against vicuna80: 1 records match 1 of its 80 prompts" in r.stdout
    assert "e.g. refusal:" in r.stdout and "exact_duplicate" in r.stdout
    assert read_jsonl(out) == GOOD[:1]
    removed = read_jsonl(tmp_path / "out.jsonl.removed.jsonl")
    assert [(x["where"], x["reason"]) for x in removed] == [(f"{src}:2", "exact_duplicate"), (f"{src}:3", "contaminated"),
                                                            (f"{src}:4", "refusal")]
    assert removed[1]["matched"] == [{"benchmark": "vicuna80", "id": "1", "score": 1.0}]
    summary = json.loads((tmp_path / "out.jsonl.summary.json").read_text())
    assert summary["by_reason"]["contaminated"] == 1 and summary["kept"] == 1


@pytest.mark.parametrize("args, rows, says", [
    ([], "bad-json", "in.jsonl:2:"),
    ([], [{"input": "no instruction", "output": "x"}], "in.jsonl:1: field 'instruction' is missing"),
    ([], [{"user_input": "### Instruction: hi", "responses_and_scores": []}], "in.jsonl:1: a comparison record"),
    (["--against", "no-such-bench"], GOOD, "--against no-such-bench: neither a known benchmark (vicuna80,"),
    (["--against", "alpaca-gpt4-en"], GOOD, "--against alpaca-gpt4-en: a training dataset, not a benchmark"),
    (["--against", "unnatural-instructions"], GOOD, "gpt4llm benchmarks download unnatural-instructions"),
    (["--against", "vicuna80", "--contamination-ngram", "8"], GOOD, "--against vicuna80: not available offline at n=8"),
    (["--near-threshold", "1.5"], GOOD, "--near-threshold': Input should be less than or equal to 1"),
    (["--near-threshold", "0"], GOOD, "--near-threshold 0.0: Input should be greater than 0"),
    (["--contamination-threshold", "1"], GOOD, "--contamination-threshold 1.0: Input should be less than 1"),
    (["--near-ngram", "0"], GOOD, "--near-ngram': Input should be greater than or equal to 1"),
    (["--language", "xx"], GOOD, "--language: language 'xx' is not one py3langid knows"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, args, rows, says):
    src = tmp_path / "in.jsonl"
    if rows == "bad-json":
        src.write_text(json.dumps(GOOD[0]) + "\n{\"instruction\": \"oops\",\n")
    else:
        write_jsonl(src, rows)
    out = tmp_path / "out.jsonl"
    r = run_cli("clean", str(src), "-o", str(out), *args, env={"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")})
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not any(p.name.startswith("out.jsonl") for p in tmp_path.iterdir())


def test_output_onto_its_input_is_refused(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", GOOD)
    r = run_cli("clean", str(src), "-o", str(src))
    assert r.returncode == 2 and "that is an input" in r.stderr
    assert read_jsonl(src) == GOOD
