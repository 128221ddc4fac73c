"""The rating parser of ``compare``: first lines, scores written after the explanation, refusals (>= 40 cases)."""

import pytest

from gpt4llm.scoring import parse_score, rationale

ACCEPT = [
    ("8", 8), ("8.5", 8.5), ("10", 10), ("1", 1), ("9\nThe answer is complete.", 9), ("  7  ", 7),
    ("8/10", 8), ("8 / 10", 8), ("8/ 10", 8), ("3.5/10", 3.5), ("8 out of 10", 8), ("8 out of 10.", 8),
    ("Score: 8", 8), ("score: 9.5", 9.5), ("Rating: 8/10.", 8), ("Overall score: 7", 7), ("**8**", 8),
    ("**Score: 8/10**", 8), ("__7__", 7), ("`9`", 9), ("# 8", 8), ("> 6", 6), ("(8)", 8), ("[9]", 9),
    ("8.", 8), ("8 - a solid answer", 8), ("9 9", 9), ("I would rate it 7 out of 10 overall.", 7),
    ("\n\n8\nbecause", 8), ("8.0", 8), ("Score of 10/10", 10),
]
LATER = [  # a score written after the explanation: the last explicit one
    ("The response is accurate and well organised.\n\nScore: 8/10", 8),
    ("The response covers the main points.\nOverall, I would rate this response a 7 out of 10.", 7),
    ("Here is my evaluation of the 3 aspects you asked about, in order:\nclear\nScore: 6", 6),
    ("Explanation first.\nI'd give it a 9.", 9), ("Good answer.\nRating: 8/10\nOn reflection, final score: 7", 7),
    ("I would rate this response 8 out of 10 because it covers 3 points", 8),
]
REFUSE = [
    ("", "empty"), ("   \n  ", "empty"), ("ten", "no score"), ("The response is helpful.", "no score"),
    ("7-8", "several"), ("7 or 8", "several"), ("8, 9", "several"), ("Score 8, Assistant 2", "several"),
    ("0", "outside"), ("11", "outside"), ("100", "outside"), ("0.5", "outside"), ("-3", "outside"),
    ("6/8", "out of 8"), ("3 out of 5", "out of 5"), ("Rating: N/A", "no score"),
    ("**Excellent**\n9", "no score"), ("9/10 vs 8/10", "several"),
    ("Good.\nI would rate it 3 or 4 out of 10.", "ambiguous"), ("Fine.\nScore: 11/10", "outside"),
    ("Fine\nScore: 0", "outside"), ("Fine.\nScore: 7-8", "ambiguous"), ("Fine\nScore: 6/8", "out of 8"),
]


@pytest.mark.parametrize("text, score", ACCEPT)
def test_accepts(text, score):
    assert parse_score(text) == (score, "first_line")


@pytest.mark.parametrize("text, score", LATER)
def test_reads_a_score_written_after_the_explanation(text, score):
    assert parse_score(text)[0] == score


@pytest.mark.parametrize("text, why", REFUSE)
def test_refuses_and_says_why(text, why):
    score, reason = parse_score(text)
    assert score is None and why in reason


def test_at_least_forty_cases_and_the_rationale_is_the_rest():
    assert len(ACCEPT) + len(REFUSE) >= 40
    assert rationale("\n8\nGood.\nClear.") == "Good.\nClear." and rationale("8") == ""
