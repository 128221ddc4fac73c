"""Vicuna's reviewer protocol: prompts byte-exact, the verdict parser (hand-written cases and 38 real
reviews with the scores FastChat stored), the summary maths; and MT-Bench's [[rating]] read as FastChat
reads it."""

import ast
import json
import re

import pytest

from support import DATA
from support.fastchat_reviews import REVIEWS

from gpt4llm.eval.judge import summarize_reviews
from gpt4llm.eval.single import parse_rating
from gpt4llm.eval.verdict import parse_verdict, review_messages, summarize

PROMPTS = {d["prompt_id"]: d for d in map(json.loads, (DATA / "vicuna-eval-2023" / "prompt.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("category, pid", [("generic", 1), ("knowledge", 1), ("writing", 1), ("fermi", 1),
                                           ("coding", 2), ("math", 3), (None, 1)])
def test_reviewer_prompt_is_byte_exact_for_each_category(category, pid):
    msgs, got = review_messages(category, "Q {x}?", "A1", "A2")
    p = PROMPTS[pid]
    assert got == pid
    assert msgs[0] == {"role": "system", "content": "You are a helpful and precise assistant for checking the quality of the answer."}
    expected = (f"[Question]\nQ {{x}}?\n\n[The Start of Assistant 1's Answer]\nA1\n\n[The End of Assistant 1's Answer]\n\n"
                f"[The Start of Assistant 2's Answer]\nA2\n\n[The End of Assistant 2's Answer]\n\n[System]\n{p['defaults']['prompt']}\n\n")
    assert msgs[1] == {"role": "user", "content": expected}
    assert msgs[1]["content"] == p["prompt_template"].format(question="Q {x}?", answer_1="A1", answer_2="A2", **p["defaults"])


FIRST_LINE = [
    ("8 9", [8, 9]), ("8, 9", [8, 9]), ("8,9", [8, 9]), ("8.5 9", [8.5, 9]), ("(8, 9)", [8, 9]), ("(8.5, 7.0)", [8.5, 7]),
    ("Assistant 1: 8 Assistant 2: 9", [8, 9]), ("Assistant 1: 8, Assistant 2: 9", [8, 9]),
    ("assistant 1 - 7; assistant 2 - 10", [7, 10]), ("**8** **9**", [8, 9]), ("**8 9**", [8, 9]), ("`(6, 8)`", [6, 8]),
    ("8/10 9/10", [8, 9]), ("10 10", [10, 10]), ("1 1", [1, 1]), ("9 8\nAssistant 1 was better.", [9, 8]),
    ("\n\n7 6", [7, 6]), ("[8, 9]", [8, 9]), ("8\t9", [8, 9]), ("Scores: 8 9", [8, 9]), ("8 and 9", [8, 9]),
    ("Assistant 1's score: 6, Assistant 2's score: 9", [6, 9]),
    # kept as written, counted as out of range by the summary (FastChat kept "0 9" for an empty answer)
    ("0 9", [0, 9]), ("8 11", [8, 11]), ("85 90", [85, 90]), ("9 8 (Assistant 1 is more detailed)", [9, 8]),
    ("8 9 out of 10 each", [8, 9]), ("Assistant 2: 9, Assistant 1: 8", [8, 9]),
    # a verdict that ends a sentence (issue 22): "/10" and "out of 10" before ".", ",", ";", "!", ")"
    ("Assistant 1: 8/10, Assistant 2: 9/10.", [8, 9]), ("8/10 9/10.", [8, 9]), ("8, 9.", [8, 9]),
    ("8.5/10, 9/10.", [8.5, 9]), ("8 out of 10, 9 out of 10.", [8, 9]), ("Assistant 1: 8/10; Assistant 2: 9/10!", [8, 9]),
    ("(Assistant 1: 8/10, Assistant 2: 9/10)", [8, 9]), ("Assistant 1 - 8/10. Assistant 2 - 9/10.", [8, 9]),
    ("**8/10** **9/10**.", [8, 9]), ("8 / 10, 9 / 10.", [8, 9]), ("10.0/10 9/10.0.", [10, 9]), ("(7.5, 10).", [7.5, 10]),
]
LATER = [  # the math prompt puts the scores at the end; some judges explain first under any prompt
    ("First, I will solve the problem independently:\nx = 10\n\nScores:\nAssistant 1: 10\nAssistant 2: 4", [10, 4], "per_assistant"),
    ("First, I will solve it.\n\nOutput: (1, 7)", [1, 7], "closing_tuple"),
    ("First, I will solve it.\nx = 3\n\n(8, 9)", [8, 9], "closing_tuple"),
    ("First.\nScores:\nAssistant 1: 1/10\nAssistant 2: 2/10", [1, 2], "per_assistant"),
    ("Reasoning.\nAssistant 1 receives a score of 8, while Assistant 2 receives a score of 9.", [8, 9], "per_assistant"),
    ("Reasoning.\nI would give Assistant 1 a score of 1 and Assistant 2 a score of 10.\n\nOutput: (1, 10)", [1, 10], "closing_tuple"),
    ("Reasoning.\nI would rate them 7 and 9, respectively.", [7, 9], "per_assistant"),
    ("Reasoning.\nAssistant 1: 2 (Incorrect answer)\nAssistant 2: 4 (Attempted)", [2, 4], "per_assistant"),
    ("Solve: the point (2, -2).\nAssistant 1: 12 is its answer\nScores:\nAssistant 1: 9\nAssistant 2: 4", [9, 4], "per_assistant"),
    ("Reasoning\n```python\n(3, 8)\n```", [3, 8], "closing_tuple"),
    # issue 22's three, then more sentence ends
    ("Assistant 1: 8/10.\nAssistant 2: 9/10.", [8, 9], "per_assistant"),
    ("Reasoning.\nAssistant 1 gets a score of 3 out of 10. Assistant 2 gets a score of 9 out of 10.", [3, 9], "per_assistant"),
    ("Reasoning.\nI would give Assistant 1 a score of 4 out of 10 and Assistant 2 a score of 8 out of 10.", [4, 8],
     "per_assistant"),
    ("Reasoning.\nAssistant 1: **8.5/10**.\nAssistant 2: **9/10**.", [8.5, 9], "per_assistant"),
    ("Reasoning.\nAssistant 1's score is 3 out of 10, and Assistant 2's score is 10 out of 10.", [3, 10], "per_assistant"),
    ("Reasoning.\nAssistant 1 scores 7/10 (good), Assistant 2 scores 9.5/10 (better)!", [7, 9.5], "per_assistant"),
    ("Reasoning.\nAssistant 1:\nScore: 6/10\n\nWeaknesses: no code.\n\nAssistant 2:\nScore: 8/10.", [6, 8], "per_assistant"),
    ("Reasoning.\nI would give both Assistant 1 and Assistant 2 a score of 7 out of 10.", [7, 7], "per_assistant"),
    ("Reasoning.\nWe would rate Assistant 1's solution as 10 out of 10 and Assistant 2's solution as 8 out of 10.",
     [10, 8], "per_assistant"),
]
REFUSE = [
    "", "8", "8 9 10", "Assistant 1 is better.", "Both answers are good", "The scores are eight and nine",
    "(8, 9, 7)", "-", "Assistant 1: N/A Assistant 2: 9", "1 2 3 4", "Score: 7/10", "8-9 9", "I cannot judge this.",
    "*", "Let's solve 2 + 3 first.\nThe answer is 5.",
    # a pair quoted in the reasoning is not a verdict
    "First, I will solve it.\nThe endpoints are (2, -2) and (10, 4).\nBoth assistants computed it.\nThey agree.\nGood.",
    # an answer of the math problem after "Assistant 1:" is not a score
    "Solve.\nAssistant 1: 3x + 2 = 11\nAssistant 2: 10 = 2x - 10\nDone.",
    # "/10" followed by more digits is not "out of 10": nothing, rather than 3 or 10.5
    "Reasoning.\nAssistant 1: 3/10.5\nAssistant 2: 9/10", "3/10.5 9/10", "85/100 90/100",
    "Reasoning.\nAssistant 1: 85/100.\nAssistant 2: 9/10.", "Reasoning.\nBoth assistants scored above 5 on accuracy.",
    "Reasoning.\nAssistant 2's answer is 3, and Assistant 1's answer is 5; both are scored below.",
]


@pytest.mark.parametrize("text, scores", FIRST_LINE)
def test_first_line_verdicts(text, scores):
    assert parse_verdict(text) == ([float(x) for x in scores], "first_line")


@pytest.mark.parametrize("text, scores, rule", LATER)
def test_verdicts_written_later(text, scores, rule):
    assert parse_verdict(text) == ([float(x) for x in scores], rule)


@pytest.mark.parametrize("text", REFUSE)
def test_verdicts_refused_with_a_reason(text):
    s, reason = parse_verdict(text)
    assert s is None and reason


@pytest.mark.parametrize("source, qid, text, stored", REVIEWS, ids=[f"{f.rsplit('/', 1)[-1][:-6]}-q{q}" for f, q, _, _ in REVIEWS])
def test_real_reviews_read_as_fastchat_stored_them(source, qid, text, stored):
    """FastChat's own 2023 reviews (GPT-4 and GPT-3.5-turbo as reviewers): the scores its authors
    stored, typed by hand where FastChat's first-line reader failed; [-1, -1] reads as no verdict."""
    got, rule = parse_verdict(text)
    assert got == (None if stored == [-1, -1] else [float(x) for x in stored]), rule


def test_real_reviews_are_distinct_and_span_both_reviewers_and_every_rule():
    assert len({t for _, _, t, _ in REVIEWS}) == len(REVIEWS) >= 38
    assert {parse_verdict(t)[1] for _, _, t, s in REVIEWS if s != [-1, -1]} == {"first_line", "per_assistant", "closing_tuple"}
    assert {f.startswith("gpt-3.5-turbo") for f, _, _, _ in REVIEWS} == {True, False}


# ---------------------------------------------------------------- MT-Bench single grading: [[rating]]

def fastchat_rating(judgment: str):
    """FastChat's llm_judge/common.py run_judge_single, restated: re.search (the first match) with
    one_score_pattern, else one_score_pattern_backup, ast.literal_eval of the group; -1 when none."""
    match = re.search(r"\[\[(\d+\.?\d*)\]\]", judgment) or re.search(r"\[(\d+\.?\d*)\]", judgment)
    return ast.literal_eval(match.groups()[0]) if match else -1


RATINGS = [  # (judgment, the rating read by hand, rule)
    ("Rating: [[7]] The answer is right, though the reference would get [[10]].", 7, "double_brackets"),  # issue 22
    ('Following the format "[[rating]]", for example: "Rating: [[5]]", the answer is wrong.\nRating: [[2]]', 5,
     "double_brackets"),  # FastChat reads the quoted example too
    ("It cites [1] and [2] correctly.\n\nRating: [[6]]", 6, "double_brackets"),  # [[n]] anywhere beats an earlier [n]
    ("Accurate.\n\nRating: [8]; with examples it would be [9].", 8, "single_brackets"),
    ("Rating: [[8.5]]", 8.5, "double_brackets"), ("Rating: [[12]]", 12, "double_brackets"),  # kept as written
    # real GPT-4 judgments (FastChat llm_judge's gpt-4_single.jsonl, question 81, 82, 84 turn 1), closing lines
    ("Overall, the assistant's response is very helpful and informative. \n\nRating: [[8]]", 8, "double_brackets"),
    ("The assistant's response is not helpful or appropriate to the user's request. Therefore, the response is not "
     "satisfactory. \nRating: [[1]]", 1, "double_brackets"),
    ("Overall, the assistant's response is very helpful and meets the user's request fully. Rating: [[10]]", 10,
     "double_brackets"),
]
BEYOND_FASTCHAT = [  # FastChat records -1 for these; read only then
    ("The reference says second place; the assistant agrees.\n\n[[9/10]]", 9, "brackets_out_of_10"),
    ("Rating: [[ 8 ]]", 8, "brackets_out_of_10"), ("The code is correct.\nRating: 6", 6, "rating_line"),
    ("Extraction is complete: 7/10", 7, "out_of_10"), ("Part one is 3/10, but overall: 7/10", 7, "out_of_10"),
]


@pytest.mark.parametrize("judgment, rating, rule", RATINGS)
def test_rating_is_fastchats_first_double_then_single_bracket(judgment, rating, rule):
    assert fastchat_rating(judgment) == rating
    assert parse_rating(judgment) == (rating, rule)


@pytest.mark.parametrize("judgment, rating, rule", BEYOND_FASTCHAT)
def test_rating_forms_fastchat_misses_are_read_after_it(judgment, rating, rule):
    assert fastchat_rating(judgment) == -1
    assert parse_rating(judgment) == (rating, rule)


@pytest.mark.parametrize("judgment", ["", "It discusses the topic well, but I will not rate it.", "Rating: [[high]]"])
def test_no_rating_gives_a_reason(judgment):
    value, reason = parse_rating(judgment)
    assert value is None and reason


def rows(*pairs, cats=None):
    return [{"question_id": i, "category": (cats or {}).get(i), "model": m, "reference": r,
             "orders": [(m, r)] if m is not None else []} for i, (m, r) in enumerate(pairs)]


def test_summary_sums_ratio_outcomes_and_failures():
    s = summarize(rows((8, 9), (9, 7), (6, 6), (None, None), cats={0: "math", 1: "math", 2: "writing"}))
    assert (s["model_score_sum"], s["reference_score_sum"]) == (23, 22)
    assert s["ratio_percent"] == pytest.approx(100 * 23 / 22)
    assert (s["wins"], s["ties"], s["losses"], s["parse_failures"], s["scored"]) == (1, 1, 1, 1, 3)
    assert s["per_category"]["math"] == {"n": 2, "model_score_sum": 17, "reference_score_sum": 16, "ratio_percent": pytest.approx(106.25)}


def test_bootstrap_interval_brackets_the_ratio_and_narrows_with_more_questions():
    small = summarize(rows(*[(7, 8), (9, 8), (6, 9), (8, 8)] * 5))
    big = summarize(rows(*[(7, 8), (9, 8), (6, 9), (8, 8)] * 80))
    for s in (small, big):
        lo, hi = s["ratio_ci95"]
        assert lo < s["ratio_percent"] < hi
    assert big["ratio_ci95"][1] - big["ratio_ci95"][0] < small["ratio_ci95"][1] - small["ratio_ci95"][0]
    assert summarize(rows((8, 9), (8, 9), (8, 9)))["ratio_ci95"] == pytest.approx([100 * 8 / 9] * 2)


def test_both_orders_average_and_flip_rate():
    reviews = []
    for q, (first, second) in enumerate([((8, 9), (9, 8)), ((9, 6), (5, 9)), ((7, 7), (7, 7)), ((6, 8), (7, 8))]):
        reviews.append({"question_id": q, "score": list(first), "meta": {"order": "model_first"}})
        reviews.append({"question_id": q, "score": list(second), "meta": {"order": "reference_first"}})
    s = summarize_reviews(reviews)
    # model: (8+8)/2, (9+9)/2, 7, (6+8)/2 ; reference: (9+9)/2, (6+5)/2, 7, (8+7)/2
    assert s["model_score_sum"] == pytest.approx(8 + 9 + 7 + 7) and s["reference_score_sum"] == pytest.approx(9 + 5.5 + 7 + 7.5)
    # q0: loss/loss, q1: win/win, q2: tie/tie, q3: loss/win -> one flip in four
    assert s["flip_rate"] == 0.25 and s["flips"] == 1
