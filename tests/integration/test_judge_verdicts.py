"""``eval judge`` reads judges' reviews as they are written (issue 12).

62 reviews in the styles GPT-4 writes under Vicuna's three reviewer prompts (general: scores on
the first line; coding: scores first, then strengths and weaknesses; math: the problem solved
first, the scores at the end, as "Output: (1, 7)", "Scores:\\nAssistant 1: 1/10", "(8, 9)" ...)
go through the whole command against a loopback OpenAI-compatible server that answers each
question with its review. Each review's scores are written beside it by hand; the summary's sums
must equal theirs, with no follow-up. Three more reviews hold no scores: they are followed up in
the same conversation (never asked again as they were), counted and costed; the one the judge
never scores is kept with its text as [-1, -1].
"""

import json

from support import read_jsonl, run_cli, write_jsonl

from gpt4llm.eval.judge import FOLLOWUP

SOLVED = "First, I will solve the problem independently:\n\n"
GENERAL = [
    ("8 9\nBoth assistants provided relevant answers, but Assistant 2 gave more detail.", (8, 9)),
    ("9 9.5\nBoth Assistant 1 and Assistant 2 provided helpful, relevant, and accurate responses.", (9, 9.5)),
    ("7, 8\nAssistant 2's answer is more complete.", (7, 8)),
    ("10 7\n\nAssistant 1 covered every point; Assistant 2 missed two of the five tips.", (10, 7)),
    ("0 9\nAssistant 1 did not provide any answer, while Assistant 2 answered well.", (0, 9)),
    ("**8** **6**\n\nAssistant 1 is clear and accurate. Assistant 2 is vague.", (8, 6)),
    ("Assistant 1: 7 Assistant 2: 9\nAssistant 2 explained the trade-offs.", (7, 9)),
    ("(6, 8)\nThe second answer is better organised.", (6, 8)),
    ("8/10 9/10\nBoth are good; the second is more detailed.", (8, 9)),
    ("Scores: 5 7\nNeither answer is complete, but Assistant 2 is closer.", (5, 7)),
    ("9 8 (Assistant 1 is more detailed)\nBoth answers are accurate.", (9, 8)),
    ("\n\n7 7\nBoth answers are equally helpful and accurate.", (7, 7)),
    ("Assistant 1's score: 6, Assistant 2's score: 9\nAssistant 2 gave concrete examples.", (6, 9)),
    ("8.5 9\nBoth answers are strong.", (8.5, 9)),
    ("4 10\nAssistant 1's response is irrelevant to the question about 3 countries.", (4, 10)),
    ("Both assistants gave relevant answers about the 2 options.\nAssistant 1: 8/10\nAssistant 2: 9/10", (8, 9)),
    ("Here is my evaluation.\n\nAssistant 1 listed 3 strategies. Assistant 1 receives a score of 7.\n\n"
     "Assistant 2 listed 5 strategies with examples. Therefore, Assistant 2 receives a score of 9.", (7, 9)),
    ("I would rate Assistant 1 a 6 and Assistant 2 an 8, because the second answer cites 2 studies.", (6, 8)),
    ("The scores are 8 for Assistant 1 and 9 for Assistant 2.\nBoth were polite and clear.", (8, 9)),
    ("9 9\nBoth are excellent.", (9, 9)),
    ("1 8\nAssistant 1 refused to answer the question.", (1, 8)),
    ("7 8.5\nAssistant 2 is somewhat more thorough.", (7, 8.5)),
    ("[8, 7]\nAssistant 1 is more concise and equally accurate.", (8, 7)),
    ("Assistant 1: 6/10, Assistant 2: 8/10\nAssistant 2 addressed all 4 parts of the question.", (6, 8)),
]
CODING = [
    ("6 5\n\nAssistant 1:\nStrengths:\n- The code is well-structured and easy to read.\n\nWeaknesses:\n- The algorithm "
     "has a time complexity of O(n^2), which can be slow for large arrays.\n\nAssistant 2:\nStrengths:\n- Simple.\n\n"
     "Weaknesses:\n- No comments.", (6, 5)),
    ("4 9\n\nAssistant 1:\nStrengths:\n- The explanation is clear.\n\nWeaknesses:\n- The code is pseudocode.\n\n"
     "Assistant 2:\nStrengths:\n- Working Python with memoization.", (4, 9)),
    ("8 6\n\nAssistant 1 is correct:\n```python\ndef add(a, b):\n    return a + b\n\nprint(add(2, 3))  # 5\n```\n"
     "Assistant 2 returns 6 for add(2, 3).", (8, 6)),
    ("7 10\n\nAssistant 1 provided a good explanation of binary search but no code.", (7, 10)),
    ("2 8\n\nAssistant 1's code does not compile. Assistant 2's works for n = 0, 1 and 10.", (2, 8)),
    ("9, 7\n\nBoth implement the queue with two stacks; Assistant 2 forgets to transfer elements.", (9, 7)),
    ("10 10\nBoth implementations are correct and well commented.", (10, 10)),
    ("Assistant 1: 5\nAssistant 2: 7\n\nAssistant 1's regular expression misses hyphens in domains.", (5, 7)),
    ("Both submissions implement the algorithm.\n\n```python\ndef fib(n):\n    if n <= 1:\n        return n\n"
     "    return fib(n - 1) + fib(n - 2)\n```\n\nAssistant 1:\nStrengths: recursion is clear.\n\nScores:\n"
     "Assistant 1: 6/10\nAssistant 2: 8/10", (6, 8)),
    ("3 7\n\nAssistant 1 reads the whole file into memory; Assistant 2 streams it line by line.", (3, 7)),
    ("0 6\nAssistant 1 did not provide any code.", (0, 6)),
    ("**7** **8**\n\n**Assistant 1**\n- Strengths: handles empty input.\n\n**Assistant 2**\n- Strengths: O(n log n).", (7, 8)),
    ("(5, 9)\n\nAssistant 1:\n- Uses an extra data structure, which the problem forbids.", (5, 9)),
    ("Here is my review of the two submissions.\n\nAssistant 1 handles 2 of the 3 cases. Overall, I would give "
     "Assistant 1 a score of 4 and Assistant 2 a score of 9.", (4, 9)),
    ("8 8\nBoth are correct; neither has comments.", (8, 8)),
    ("6.5 8\nAssistant 2's solution is O(n) instead of O(n^2).", (6.5, 8)),
]
MATH = [
    (SOLVED + "f(x) = 5x^3 - 2x + 3\nf(2) = 5(2)^3 - 2(2) + 3 = 40 - 4 + 3 = 39\n\nNow, I will evaluate the "
     "problem-solving process of Assistant 1 and Assistant 2:\n\nAssistant 1:\nf(2) = 5(2)^3 - 2(2) + 3 = 40 - 4 + 3 = 39\n"
     "The steps and the final answer are correct.\n\nAssistant 2:\nf(2) = 5(2)^3 - 2(2) + 3 = 5 * 8 - 2 + 3 = 41 - 2 + 3 = 40\n"
     "The steps are incorrect, and the final answer is wrong.\n\nScores:\nAssistant 1: 10\nAssistant 2: 4\n\n"
     "Assistant 1 performed better because they provided the correct steps and final answer.", (10, 4)),
    (SOLVED + "3x + 10 = 5(x - 2)\n3x + 10 = 5x - 10\n-2x = -20\nx = 10\n\nAssistant 1:\nx = 6.\nAssistant 1's answer is "
     "incorrect.\n\nAssistant 2:\n3x + 10 = 5(x - 2)\nx = 10\nAssistant 2's answer is correct.\n\nBased on the "
     "correctness of their answers and problem-solving steps, I would give Assistant 1 a score of 1 and Assistant 2 a "
     "score of 10.\n\nOutput: (1, 10)", (1, 10)),
    ("First, let's solve the problem independently:\n\nThe endpoints of the line segment are (2, -2) and (10, 4). "
     "distance = sqrt((10 - 2)^2 + (4 - (-2))^2) = sqrt(100) = 10\n\nAssistant 1:\nThe length is not 8 units.\n\n"
     "Scores:\nAssistant 1: 2 (Incorrect answer, no explanation)\nAssistant 2: 4 (Incorrect answer, but attempted "
     "problem-solving process)\n\nThe better-performing assistant is Assistant 2.\n\nOutput: (2, 4)", (2, 4)),
    (SOLVED + "The answer is 39.\n\nAssistant 1 gave 1 with no steps. Assistant 2 made one slip in step 3.\n\n"
     "Output: (1, 7)", (1, 7)),
    (SOLVED + "x = 10.\n\nBoth assistants found x = 10 with correct steps; Assistant 1 skipped a step.\n\n(8, 9)", (8, 9)),
    (SOLVED + "The probability is 1/6.\n\nAssistant 1 said 1/2. Assistant 2 said 1/3.\n\nScores:\nAssistant 1: 1/10\n"
     "Assistant 2: 2/10", (1, 2)),
    (SOLVED + "The area is 3 square units.\n\nAssistant 1 is right but terse. Assistant 2 is right and explains.\n\n"
     "Assistant 1: 8\nAssistant 2: 9", (8, 9)),
    ("First, I will solve the problem independently:\nThe endpoints are (2, -2) and (10, 4), so the length is 10.\n\n"
     "Assistant 1 made an error in the y-difference. Assistant 2 is correct.\n\nTherefore, the output is (3, 9).", (3, 9)),
    (SOLVED + "f(2) = 39.\n\nAssistant 1: wrong. Assistant 2: right.\n\n```python\n(6, 10)\n```", (6, 10)),
    (SOLVED + "f(2) = 39.\n\nAssistant 1 computed 2^3 as 6.\n\nFinal scores: (7, 3)", (7, 3)),
    (SOLVED + "x = 4.\n\nAssistant 1 receives a score of 9, while Assistant 2 receives a score of 5.", (9, 5)),
    ("(10, 10)\n\nBoth assistants solved 3x + 10 = 5(x - 2) correctly: x = 10.", (10, 10)),
    ("10 3\nFirst, I solved it: the answer is 39. Assistant 2 got 40.", (10, 3)),
    (SOLVED + "The sum of 2 and 3 is 5.\n\nScores:\nAssistant 1: 10/10\nAssistant 2: 6/10\n\nAssistant 1 performed better.",
     (10, 6)),
    (SOLVED + "x = 10.\n\nAssistant 1: 0 (no answer)\nAssistant 2: 8\n\nOutput: (0, 8)", (0, 8)),
    (SOLVED + "The length is 10.\n\nAssistant 1 is off by 2.\n\nOutput: `(4, 9)`", (4, 9)),
    (SOLVED + "Let the number be x. Then 2x + 3 = 11, so x = 4.\n\nAssistant 1 found x = 4, which is correct. "
     "Assistant 2 found x = 7, which is wrong.\n\nI would rate them 9 and 3, respectively.", (9, 3)),
    (SOLVED + "f(2) = 39.\n\nAssistant 1 has the right method but a wrong sum.\n\nOutput: (5.5, 8)", (5.5, 8)),
    (SOLVED + "x = 10.\n\n**Scores:**\n- **Assistant 1:** 7/10\n- **Assistant 2:** 10/10", (7, 10)),
    (SOLVED + "x = 10.\n\nThe scores are 3 for Assistant 1 and 8 for Assistant 2.\n\nOutput: (3, 8)", (3, 8)),
    ("First, I will solve the problem independently: the area of the triangle with vertices (0, 0), (-1, 1), and "
     "(3, 3) is 3.\n\nAssistant 1 got 3. Assistant 2 got 6.\n\nAssistant 1: 10\nAssistant 2: 2\n\nOutput: (10, 2)", (10, 2)),
    ("First, I'll solve the problem: x = 12.\n\nFinal answers:\nAssistant 1: 12\nAssistant 2: 14\n\nScores:\n"
     "Assistant 1: 9\nAssistant 2: 4", (9, 4)),
]
# No rule reads these: followed up. (review, the judge's replies to the follow-ups, expected scores)
FOLLOWED = [
    ("generic", "Assistant 2 is clearly better; Assistant 1 ignored the question.", ["3 8"], (3, 8)),
    ("math", SOLVED + "x = 10. Both assistants are wrong.", ["(2, 2)"], (2, 2)),
    ("generic", "I cannot decide between these answers.", ["I cannot decide.", "Both are fine."], None),
]


def _setup(tmp_path):
    items = [("generic", t, s) for t, s in GENERAL] + [("coding", t, s) for t, s in CODING] + \
            [("math", t, s) for t, s in MATH]
    items += [(cat, text, s) for cat, text, _, s in FOLLOWED]
    questions, model, ref, reviews, replies = [], [], [], {}, {}
    for i, (cat, text, _) in enumerate(items, 1):
        q = f"Question {i}: please help with task number {i}."
        questions.append({"question_id": i, "text": q, "category": cat})
        model.append({"question_id": i, "answer_id": f"m{i}", "model_id": "student", "text": f"Student answer {i}."})
        ref.append({"question_id": i, "answer_id": f"r{i}", "model_id": "gpt-4", "text": f"Reference answer {i}."})
        reviews[q] = text
    for cat, text, followups, _ in FOLLOWED:
        replies[text] = followups
    files = (write_jsonl(tmp_path / "q.jsonl", questions), write_jsonl(tmp_path / "student.jsonl", model),
             write_jsonl(tmp_path / "gpt4.jsonl", ref))
    return items, reviews, replies, files


def test_judge_reads_real_style_reviews_without_reasks_and_follows_up_the_rest(tmp_path, openai_server, openai_env):
    items, reviews, replies, (qf, af, rf) = _setup(tmp_path)
    assert len(GENERAL) + len(CODING) + len(MATH) >= 60

    def reply(body):
        msgs = body["messages"]
        user = msgs[1]["content"]
        review = next(t for q, t in reviews.items() if f"[Question]\n{q}\n\n" in user)
        if len(msgs) == 2:
            return review
        k = (len(msgs) - 2) // 2  # the k-th follow-up
        return replies[review][k - 1]

    openai_server.reply = reply
    out = tmp_path / "reviews.jsonl"
    args = ("eval", "judge", "--questions", str(qf), "--answers", str(af), "--reference", str(rf), "--judge",
            "openai:gpt-4", "--orders", "paper", "-o", str(out), "--quiet")
    r = run_cli(*args, env=openai_env)
    assert r.returncode == 0, r.stderr
    got = {x["question_id"]: x for x in read_jsonl(out)}
    n_plain = len(GENERAL) + len(CODING) + len(MATH)
    for i, (cat, text, expected) in enumerate(items, 1):
        rev = got[i]
        assert rev["text"] == text
        if i <= n_plain:  # read without a follow-up, with the scores the text gives
            assert rev["score"] == [float(x) for x in expected], (text, rev["score"], rev["meta"])
            assert rev["meta"]["parse_rule"] in ("first_line", "per_assistant", "closing_tuple")
            assert rev["meta"]["attempts"] == 1 and "followups" not in rev["meta"]
    # The rules used where the review puts its scores.
    math_rules = {got[i]["meta"]["parse_rule"] for i in range(len(GENERAL) + len(CODING) + 1, n_plain + 1)}
    assert {"per_assistant", "closing_tuple", "first_line"} <= math_rules
    # Follow-ups: the judge's review kept, then the follow-up turn; one request per follow-up, none repeated.
    requests = openai_server.requests
    assert len(requests) == len(items) + 1 + 1 + 2
    followups = [x for x in requests if len(x["body"]["messages"]) > 2]
    assert len(followups) == 4
    for x in followups:
        msgs = x["body"]["messages"]
        assert msgs[2]["role"] == "assistant" and msgs[2]["content"] in replies and msgs[3] == {"role": "user", "content": FOLLOWUP}
    assert len({json.dumps(x["body"]["messages"]) for x in requests}) == len(requests)
    a, b, c = (got[n_plain + k] for k in (1, 2, 3))
    assert a["score"] == [3, 8] and a["meta"]["parse_rule"] == "followup" and a["meta"]["followups"] == ["3 8"]
    assert b["score"] == [2, 2] and b["meta"]["parse_rule"] == "followup"
    assert c["score"] == [-1, -1] and c["meta"]["parse_status"] == "parse_failed" and c["text"] == FOLLOWED[2][1]
    assert c["meta"]["followups"] == FOLLOWED[2][2] and c["meta"]["attempts"] == 3
    # The summary's sums are those of the hand-written scores.
    s = json.loads((tmp_path / "reviews.jsonl.summary.json").read_text())["models"]["student"]
    scored = [x[2] for x in items if x[2] is not None]
    assert s["model_score_sum"] == sum(x[0] for x in scored) and s["reference_score_sum"] == sum(x[1] for x in scored)
    assert (s["questions"], s["scored"], s["parse_failures"], s["call_failures"]) == (len(items), len(items) - 1, 1, 0)
    assert s["out_of_range"] == sum(1 for x in scored if not all(1 <= v <= 10 for v in x)) == 3
    assert s["reasks"] == 4 and s["reasked_reviews"] == 3 and s["reask_cost_usd"] > 0
    assert sum(s["parse_rules"].values()) == len(items) - 1 and s["parse_rules"]["followup"] == 2
    assert "out of 1-10 (kept) 3" in r.stdout and "follow-ups: 4 (read 2 verdicts" in r.stdout
    # Nothing is paid twice.
    r = run_cli(*args, env=openai_env)
    assert r.returncode == 0 and "model calls: 0 made" in r.stdout and len(openai_server.requests) == len(requests)
