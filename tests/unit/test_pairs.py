import json

import pytest

from gpt4llm import pairs
from gpt4llm.compare import RATING, rating_prompt, score_report
from gpt4llm.errors import UserError
from support import SHARED


def test_rating_prompt_is_byte_exact_against_the_spec():
    text = (SHARED / "spec" / "PAPER.md").read_text(encoding="utf-8")
    start = text.index("```\n### Instruction \n") + 4
    assert RATING == text[start: text.index("\n```", start)]
    p = rating_prompt("Add.", "2 3", "5 {not a field}")
    assert p.startswith("### Instruction \n\nAdd.\n\n2 3\n\n### Response \n\n5 {not a field}\n\n### End of Response \n\n")


def comparison(*scores_and_texts):
    return pairs.Comparison(user_input="p", responses_and_scores=[
        {"response": t, "score": s, "source": f"m{i}"} for i, (s, t) in enumerate(scores_and_texts)])


def test_all_k_choose_2_pairs_with_ties_and_identical_texts_counted():
    st = pairs.PairStats()
    got = pairs.pairs_of(comparison((9, "a"), (4, "b"), (7, "c")), st)
    assert [(h.response, l.response) for h, l in got] == [("a", "b"), ("a", "c"), ("c", "b")]
    got = pairs.pairs_of(comparison((8, "a"), (8, "b"), (3, "a"), (3, "d")), st)
    assert [(h.response, l.response) for h, l in got] == [("a", "d"), ("b", "a"), ("b", "d")]
    assert (st.ties, st.identical) == (2, 1)


def test_export_to_trl_and_v1_from_the_released_v2_array_form(tmp_path):
    src = tmp_path / "comparison_data_v2.json"
    src.write_text(json.dumps([
        {"user_input": "P1", "responses_and_scores": [{"response": "x", "score": 9.0, "source": "gpt4"},
                                                       {"response": "y", "score": 4.0, "source": "icm-1.3b"},
                                                       {"response": "z", "score": 9.0, "source": "text-davinci-003"}]},
        {"user_input": "P2", "responses_and_scores": [{"response": "u", "score": 8.0, "source": "gpt4"}]}], indent=4))
    st = pairs.export(src, "trl", tmp_path / "trl.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert rows == [{"prompt": "P1", "chosen": "x", "rejected": "y", "margin": 5.0},
                    {"prompt": "P1", "chosen": "z", "rejected": "y", "margin": 5.0}]
    assert (st.prompts, st.pairs, st.ties, st.prompts_without_pairs) == (2, 2, 1, 1)
    pairs.export(src, "gpt4llm-v1", tmp_path / "v1.json")
    assert json.loads((tmp_path / "v1.json").read_text())[0] == {"user_input": "P1", "completion_a": "x", "completion_b": "y"}
    with pytest.raises(UserError, match="--to csv"):
        pairs.export(src, "csv", tmp_path / "x")


def test_a_bad_v2_record_names_its_line(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text('{"user_input": "p", "responses_and_scores": []}\n{"user_input": "p"}\n')
    with pytest.raises(UserError, match=r"c.jsonl:2: not a comparison v2 record"):
        pairs.load_comparisons(src)


def test_score_report_reproduces_the_papers_numbers_on_its_real_scores():
    scores = json.loads((SHARED / "data" / "gpt4llm-paper" / "cmp_data_scores.json").read_text())
    r = score_report(scores)["sources"]
    assert (r["gpt4"]["n"], r["text-davinci-003"]["n"], r["icm-1.3b"]["n"]) == (51445, 51183, 51428)
    assert (round(r["gpt4"]["mean"], 2), round(r["text-davinci-003"]["mean"], 2), round(r["icm-1.3b"]["mean"], 2)) == (8.94, 8.72, 4.23)
    assert r["gpt4"]["most_common_score"] == 9 and round(r["gpt4"]["most_common_share"], 3) == 0.895


def test_kto_labels_are_relative_to_the_prompts_other_responses(tmp_path):
    src = tmp_path / "c.json"
    src.write_text(json.dumps([
        {"user_input": "P1", "responses_and_scores": [{"response": "x", "score": 9.0, "source": "gpt4"},
                                                       {"response": "y", "score": 4.0, "source": "icm-1.3b"},
                                                       {"response": "z", "score": 9.0, "source": "text-davinci-003"}]},
        {"user_input": "P2", "responses_and_scores": [{"response": "a", "score": 7.0}, {"response": "b", "score": 7.0}]},
        {"user_input": "P3", "responses_and_scores": [{"response": "u", "score": 8.0, "source": "gpt4"}]}]))
    st = pairs.export(src, "trl-kto", tmp_path / "kto.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "kto.jsonl").read_text().splitlines()]
    assert rows == [{"prompt": "P1", "completion": "x", "label": True}, {"prompt": "P1", "completion": "y", "label": False},
                    {"prompt": "P1", "completion": "z", "label": True}]
    assert (st.desirable, st.undesirable, st.equal_to_the_others, st.prompts_without_pairs) == (2, 1, 2, 1)
    assert st.kto_weights() == {"desirable_weight": 1.0, "undesirable_weight": 2.0}


def test_the_kto_rule_stays_balanced_on_the_papers_released_scores():
    """Index by index, the three released score lists as prompts: 64.7% desirable, where a fixed
    threshold of 9 labels 89.5% of GPT-4's answers and 12% of OPT-IML's desirable."""
    scores = json.loads((SHARED / "data" / "gpt4llm-paper" / "cmp_data_scores.json").read_text())
    names = list(scores)
    n = min(len(v) for v in scores.values())
    labels = [lab for i in range(n) for lab in pairs.kto_labels([scores[k][i] for k in names])]
    d, u = labels.count(True), labels.count(False)
    assert round(d / (d + u), 3) == 0.647 and round(labels.count(None) / len(labels), 3) == 0.049
    by_source = {k: sum(x >= 9 for x in v) / len(v) for k, v in scores.items()}
    assert by_source["gpt4"] > 0.89 and by_source["icm-1.3b"] < 0.2  # what a fixed threshold would do
