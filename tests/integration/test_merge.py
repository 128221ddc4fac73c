
from support import read_jsonl, run_cli, write_jsonl


def test_merged_shards_equal_an_unsharded_run_in_input_order(tmp_path, openai_server, openai_env):
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"Item {i}.", "input": ""} for i in range(20)])
    parts = []
    for i in range(3):
        out = tmp_path / f"s{i}.jsonl"
        assert run_cli("generate", "-i", str(src), "-o", str(out), "--teacher", "openai:t", "--shard", f"{i}/3", "-q",
                       env=openai_env).returncode == 0
        parts.append(str(out))
    r = run_cli("merge", *reversed(parts), "-o", str(tmp_path / "merged.jsonl"), "--input", str(src))
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole.jsonl"
    assert run_cli("generate", "-i", str(src), "-o", str(whole), "--teacher", "openai:t", "-q", env=openai_env,
                   ).returncode == 0
    strip = lambda rows: [{k: v for k, v in x.items() if k != "meta"} for x in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "merged.jsonl")) == strip(read_jsonl(whole))


def test_conflicting_ids_are_named(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "output": "1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "y", "output": "2"}, {"id": "x", "output": "3"}])
    r = run_cli("merge", str(a), str(b), "-o", str(tmp_path / "m.jsonl"))
    assert r.returncode == 2 and "b.jsonl:2: id x is also at" in r.stderr and "a.jsonl:1" in r.stderr
    assert not (tmp_path / "m.jsonl").exists()
