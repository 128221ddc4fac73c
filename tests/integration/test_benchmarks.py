from support import DATA, read_jsonl, run_cli, write_jsonl


def test_named_benchmarks_from_a_path_then_from_the_cache(tmp_path):
    env = {"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")}
    r = run_cli("benchmarks", "list", env=env)
    assert r.returncode == 0 and "vicuna80" in r.stdout and "not cached" in r.stdout
    assert "alpaca-eval" in r.stdout and "805 instructions" in r.stdout
    r = run_cli("answer", "--benchmark", "vicuna80", "-o", str(tmp_path / "a.jsonl"), env=env)
    assert r.returncode == 2 and "gpt4llm benchmarks download vicuna80" in r.stderr
    r = run_cli("benchmarks", "download", "vicuna80", "--path", str(DATA / "vicuna-eval-2023" / "question.jsonl"), env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("benchmarks", "download", "user-oriented-252", "--path", str(DATA / "gpt4llm-paper"), env=env)
    assert r.returncode == 0, r.stderr
    # A file that is not the canonical one is refused.
    r = run_cli("benchmarks", "download", "vicuna80", "--path", str(DATA / "gpt4llm-paper" / "user_oriented_instructions.jsonl"), env=env)
    assert r.returncode == 2 and "checksum mismatch for vicuna80" in r.stderr
    r = run_cli("answer", "--benchmark", "vicuna80", "-o", str(tmp_path / "a.jsonl"), "--limit", "2", "--max-tokens", "4",
                "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert [x["question_id"] for x in read_jsonl(tmp_path / "a.jsonl")] == [1, 2]
    r = run_cli("answer", "--benchmark", "user-oriented-252", "-o", str(tmp_path / "u.jsonl"), "--limit", "1",
                "--max-tokens", "4", "-q", env=env)
    assert r.returncode == 0 and read_jsonl(tmp_path / "u.jsonl")[0]["question_id"] == "user_oriented_task_0"


def test_the_papers_released_datasets_by_name(tmp_path, tiny_checkpoint):
    import json
    import subprocess

    from gpt4llm.eval.benchmarks import git_blob_id

    env = {"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")}
    sft = write_jsonl(tmp_path / "alpaca_gpt4_data.json.jsonl",
                      [{"instruction": f"Say {w}.", "input": "", "output": f"{w}!"} for w in ("hi", "bye", "yes", "no")])
    cmp_rows = [{"user_input": f"Below is an instruction that describes a task. Write a response that appropriately "
                               f"completes the request.\n\n### Instruction:\nSay {w}.\n\n### Response:",
                 "responses_and_scores": [{"response": f"{w}!", "score": 9.0, "source": "gpt4"},
                                          {"response": "what?", "score": 3.0, "source": "icm-1.3b"}]}
                for w in ("hi", "bye", "yes", "no")]
    cmp = tmp_path / "comparison_data_v2.json"
    cmp.write_text(json.dumps(cmp_rows, indent=4))
    # A git blob id is git's own: the sha1 of "blob <size>\0" + the bytes.
    assert git_blob_id(cmp) == subprocess.run(["git", "hash-object", str(cmp)], capture_output=True, text=True).stdout.strip()
    # Not the released file: refused, then installed on purpose with --no-verify.
    r = run_cli("benchmarks", "download", "comparison-gpt4-v2", "--path", str(cmp), env=env)
    assert r.returncode == 2 and "checksum mismatch for comparison-gpt4-v2 (git blob" in r.stderr and "--no-verify" in r.stderr
    r = run_cli("train", "dpo", "--data", "comparison-gpt4-v2", "-o", str(tmp_path / "x"), env=env)
    assert r.returncode == 2 and "gpt4llm benchmarks download comparison-gpt4-v2" in r.stderr
    for name, path in (("comparison-gpt4-v2", cmp), ("alpaca-gpt4-en", sft)):
        r = run_cli("benchmarks", "download", name, "--path", str(path), "--no-verify", env=env)
        assert r.returncode == 0 and "unverified" in r.stdout, r.stderr
    r = run_cli("benchmarks", "list", env=env)
    assert "alpaca-gpt4-en" in r.stdout and "dataset" in r.stdout
    model = f"local:{tiny_checkpoint}"
    fast = ("--max-steps", "1", "--batch-size", "2", "--per-device-batch", "2", "-q")
    for args in (("train", "sft", "--data", "alpaca-gpt4-en", "-o", str(tmp_path / "sft"), "--model", model, *fast),
                 ("train", "rm", "--data", "comparison-gpt4-v2", "-o", str(tmp_path / "rm"), "--model", model,
                  "--eval-split", "0", *fast),
                 ("train", "dpo", "--data", "comparison-gpt4-v2", "-o", str(tmp_path / "dpo"), "--model", model,
                  "--eval-split", "0", *fast),
                 ("stats", "--data", "alpaca-gpt4-en", "-o", str(tmp_path / "stats"))):
        r = run_cli(*args, env=env)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    assert json.loads((tmp_path / "stats" / "stats.json").read_text())["data"]["records"] == 4
    # The cached file is checked on every use: an edited cache is refused.
    cached = tmp_path / "cache" / "comparison_data_v2.json"
    cached.write_text(cached.read_text().replace("what?", "huh?"))
    r = run_cli("train", "dpo", "--data", "comparison-gpt4-v2", "-o", str(tmp_path / "dpo2"), env=env)
    assert r.returncode == 2 and "changed since it was installed" in r.stderr
