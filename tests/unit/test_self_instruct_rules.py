import random

import pytest
from rouge_score import rouge_scorer

from gpt4llm.self_instruct import filter_reason, parse_tasks, rouge_l, tokens, too_similar

ANSWER = """2. Instruction: Summarize the paragraph in one sentence.
2. Input:
The council met on Monday and approved the budget after a long debate.
2. Output:
The council approved the budget on Monday.
###
3. Instruction: List three synonyms for the word "happy".
3. Input:
<noinput>
3. Output:
Joyful, cheerful, content.
###
4. Instruction: Broken entry without output
4. Input:
x
###
5. Instruction:"""


def test_parse_tasks_reads_alpacas_numbered_format_and_skips_broken_entries():
    tasks = parse_tasks(ANSWER)
    assert [t["instruction"] for t in tasks] == ["Summarize the paragraph in one sentence.", 'List three synonyms for the word "happy".']
    assert tasks[1]["input"] == "" and tasks[0]["output"] == "The council approved the budget on Monday."
    assert parse_tasks("no list at all") == [] and parse_tasks("") == []


@pytest.mark.parametrize("text, reason", [
    ("Say hi.", "too short"), ("word " * 151, "too long"), ("Draw a picture of a cat in the rain.", "not doable"),
    ("Describe the graph below in two sentences.", "not doable"), ("Write a program that sorts numbers quickly.", "not doable"),
    ("“Quoted” instruction that is long enough.", "non-ASCII"), ("- List five fruits that are red.", "punctuation"),
    ("Explain why the sky appears blue at noon.", None), ("What are three benefits of regular exercise?", None),
])
def test_filters(text, reason):
    got = filter_reason(text)
    assert (got is None) if reason is None else (reason in got)


def test_our_rouge_l_equals_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rnd = random.Random(0)
    words = "the a cat dog runs fast slow over under list write explain five three".split()
    for _ in range(300):
        a = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 12)))
        b = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 12)))
        assert rouge_l(tokens(a), tokens(b)) == pytest.approx(scorer.score(b, a)["rougeL"].fmeasure)


def test_the_prefilter_never_changes_the_decision():
    rnd = random.Random(1)
    words = "write list explain give three five ways to reduce save water energy money at home work".split()
    pool = [tokens(" ".join(rnd.choice(words) for _ in range(rnd.randint(4, 10)))) for _ in range(200)]
    for _ in range(300):
        cand = tokens(" ".join(rnd.choice(words) for _ in range(rnd.randint(4, 10))))
        brute = any(rouge_l(cand, p) > 0.7 for p in pool)
        assert too_similar(cand, pool) == brute
