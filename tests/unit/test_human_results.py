import pytest

from gpt4llm.eval.human import fleiss


def rows(*judgments):
    return [{"item_id": i, "helpfulness": v} for i, v in judgments]


def test_fleiss_kappa_perfect_agreement_and_chance():
    perfect = rows(("1", "a"), ("1", "a"), ("2", "b"), ("2", "b"), ("3", "tie"), ("3", "tie"))
    assert fleiss(perfect, "helpfulness") == {"fleiss_kappa": pytest.approx(1.0), "items": 3, "raters_per_item": 2}
    split = rows(("1", "a"), ("1", "b"), ("2", "b"), ("2", "a"), ("3", "a"), ("3", "b"), ("4", "b"), ("4", "a"))
    assert fleiss(split, "helpfulness")["fleiss_kappa"] == pytest.approx(-1.0)
    assert fleiss(rows(("1", "a")), "helpfulness")["fleiss_kappa"] is None  # nobody rated twice
