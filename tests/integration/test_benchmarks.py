from support import DATA, read_jsonl, run_cli


def test_named_benchmarks_from_a_path_then_from_the_cache(tmp_path):
    env = {"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")}
    r = run_cli("benchmarks", "list", env=env)
    assert r.returncode == 0 and "vicuna80" in r.stdout and "not cached" in r.stdout
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
