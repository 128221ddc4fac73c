"""ROUGE by ground-truth length: buckets and scores on hand-computed cases."""

import json

import pytest

from gpt4llm.eval.rouge import aggregate, bucket_of, load_references, score
from gpt4llm.schemas import record_id


@pytest.mark.parametrize("text, bucket", [("", "0-2"), ("yes", "0-2"), ("a b", "0-2"), ("a b c", "3-5"), ("a b c d e", "3-5"),
                                          ("1 2 3 4 5 6", "6-10"), (" ".join("x" * 10), "6-10"), (" ".join("x" * 11), ">10"),
                                          ("a\nb\tc", "3-5")])
def test_buckets_by_whitespace_words(text, bucket):
    assert bucket_of(text) == bucket


def test_scores_on_hand_computed_cases():
    refs = {"a": "the cat sat", "b": "yes", "c": "one two three four five six seven"}
    preds = {"a": "the cat sat down", "b": "no", "c": "one two three four five six seven"}
    rows = {r["id"]: r for r in score(preds, refs)}
    # a: LCS 3, P 3/4, R 3/3 -> F = 2*.75*1/1.75 = 6/7; bigrams: 2 of 3 in pred, 2 of 2 in ref -> F = 0.8
    assert rows["a"]["rougeL"] == pytest.approx(6 / 7) and rows["a"]["rouge1"] == pytest.approx(6 / 7)
    assert rows["a"]["rouge2"] == pytest.approx(0.8)
    assert rows["b"]["rougeL"] == 0 and rows["c"]["rougeL"] == 1
    table = {r["Length"]: r for r in aggregate(list(rows.values()), "m")}
    assert table["0-2"]["NumInstance"] == 1 and table["3-5"]["rougeL"] == pytest.approx(6 / 7)
    assert table["6-10"]["rougeL"] == 1 and table[">10"]["NumInstance"] == 0 and table[">10"]["rougeL"] is None
    assert table["ALL"]["NumInstance"] == 3 and table["ALL"]["rougeL"] == pytest.approx((6 / 7 + 0 + 1) / 3)


def test_reference_formats(tmp_path):
    p = tmp_path / "ui.jsonl"
    p.write_text(json.dumps({"instruction": "Add.", "instances": [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}]}) + "\n"
                 + json.dumps({"instruction": "Say hi.", "input": "", "output": "gpt4 said hi", "label": "hi"}) + "\n")
    refs = load_references(str(p))
    assert refs == {record_id("Add.", "1 2"): "3", record_id("Add.", "2 2"): "4", record_id("Say hi."): "hi"}
