"""``gpt4llm answer``: FastChat-format answers, N samples, the model's own saved template."""

import json
import sqlite3

from support import DATA, read_jsonl, run_cli, write_jsonl

from gpt4llm.templates import ALPACA

QUESTIONS = DATA / "vicuna-eval-2023" / "question.jsonl"


def test_embedded_model_answers_vicuna_questions_with_n_samples(tmp_path):
    out = tmp_path / "answers.jsonl"
    args = ("answer", "-b", str(QUESTIONS), "-o", str(out), "--limit", "3", "--samples", "2", "--max-tokens", "12", "-q")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert [(x["question_id"], x["meta"]["sample"]) for x in rows] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert all(set(x) == {"question_id", "answer_id", "model_id", "text", "meta"} and x["text"] for x in rows)
    assert len({x["answer_id"] for x in rows}) == 6 and rows[0]["model_id"] == "smollm2-135m-instruct"
    assert rows[0]["meta"]["template"] == "chat" and rows[0]["meta"]["category"] == "generic"
    before = out.read_bytes()
    r = run_cli(*args)
    assert r.returncode == 0 and "0 made, 6 from the journal" in r.stdout and out.read_bytes() == before


def test_a_trained_checkpoint_is_prompted_with_its_saved_template(tmp_path, tiny_checkpoint, toy_sft_data):
    student = tmp_path / "student"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(student), "--model", f"local:{tiny_checkpoint}",
                "--max-steps", "1", "--batch-size", "4", "--per-device-batch", "4", "-q")
    assert r.returncode == 0, r.stderr
    qs = write_jsonl(tmp_path / "q.jsonl", [{"instruction": "Repeat the word three times: stone", "input": ""},
                                            {"instruction": "Sum these.", "input": "2 3"}])
    out = tmp_path / "a.jsonl"
    r = run_cli("answer", "-b", str(qs), "-o", str(out), "--model", f"local:{student}", "--model-id", "student",
                "--temperature", "0", "--max-tokens", "5", "-q")
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert [x["model_id"] for x in rows] == ["student", "student"] and rows[0]["meta"]["template"] == "alpaca"
    db = sqlite3.connect(tmp_path / "a.jsonl.journal.sqlite")
    prompts = sorted(json.loads(req)["prompt"] for (req,) in db.execute("SELECT request FROM calls"))
    assert prompts == sorted([ALPACA.prompt("Repeat the word three times: stone"), ALPACA.prompt("Sum these.", "2 3")])


def test_an_endpoint_serving_the_student_gets_the_alpaca_prompt_raw(tmp_path, openai_server, openai_env):
    out = tmp_path / "a.jsonl"
    r = run_cli("answer", "-b", str(QUESTIONS), "-o", str(out), "--model", "openai:student", "--template", "alpaca",
                "--limit", "2", "-q", env=openai_env)
    assert r.returncode == 0, r.stderr
    assert [x["path"] for x in openai_server.requests] == ["/v1/completions"] * 2
    assert ALPACA.prompt("How can I improve my time management skills?") in openai_server.contents()


def test_samples_with_greedy_decoding_are_refused(tmp_path):
    r = run_cli("answer", "-b", str(QUESTIONS), "-o", str(tmp_path / "a.jsonl"), "--samples", "3", "--temperature", "0")
    assert r.returncode == 2 and "N identical answers" in r.stderr
