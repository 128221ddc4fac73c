import json

from support import run_cli, write_jsonl

from gpt4llm.schemas import record_id


def test_eval_rouge_two_models_with_the_chart(tmp_path):
    refs = [{"instruction": f"Task {i}", "input": "", "label": truth} for i, truth in
            enumerate(["yes", "no", "red green blue", "a b c d e f g", " ".join(["w"] * 12)])]
    ref_file = write_jsonl(tmp_path / "refs.jsonl", refs)
    perfect = write_jsonl(tmp_path / "perfect.jsonl", [{"question_id": record_id(r["instruction"]), "answer_id": str(i),
                                                        "model_id": "oracle", "text": r["label"]} for i, r in enumerate(refs)])
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"instruction": r["instruction"], "input": "", "output": "nothing here",
                                                    "meta": {"model": "parrot"}} for r in refs])
    out = tmp_path / "rouge.json"
    r = run_cli("eval", "rouge", "-p", str(perfect), "-p", str(wrong), "-r", str(ref_file), "-o", str(out),
                "--reference-model", "parrot")
    assert r.returncode == 0, r.stderr
    table = json.loads(out.read_text())
    oracle = {x["Length"]: x for x in table if x["Model"] == "oracle"}
    assert [oracle[b]["NumInstance"] for b in ("0-2", "3-5", "6-10", ">10", "ALL")] == [2, 1, 1, 1, 5]
    assert all(oracle[b]["rougeL"] == 1 for b in oracle)
    assert all(x["rougeL"] == 0 for x in table if x["Model"] == "parrot")
    assert (tmp_path / "rouge.json.chart.png").stat().st_size > 1000
    r = run_cli("eval", "rouge", "-p", str(perfect), "-r", str(ref_file), "-o", str(out), "--reference-model", "gpt4")
    assert r.returncode == 2 and "--reference-model gpt4: not among the models (oracle)" in r.stderr
