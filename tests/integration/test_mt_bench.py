"""MT-Bench the way FastChat's llm_judge runs it (issue 16): two-turn answers from ``answer
--benchmark mt-bench``, then ``eval judge --mode single`` with FastChat's single-answer prompts
byte for byte (checked against ../shared's judge_prompts.jsonl, not against gpt4llm's copy), GPT-4's
reference answers for math, reasoning and coding, [[rating]] verdicts in the forms judges write,
follow-ups, the per-turn and per-category summary and a resume that calls nothing."""

import json
import re

import pytest
from support import DATA, read_jsonl, run_cli, write_jsonl
from support.openai_server import OpenAIServer

from gpt4llm.templates import ALPACA

MT = DATA / "mt-bench-2023"
PROMPTS = {d["name"]: d for d in read_jsonl(MT / "judge_prompts.jsonl")}
PICK = [81, 92, 101, 111, 121, 131, 141, 151]  # one question per category: writing ... humanities


@pytest.fixture
def cache(tmp_path, monkeypatch):
    env = {"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")}
    r = run_cli("benchmarks", "download", "mt-bench", "--path", str(MT), env=env)
    assert r.returncode == 0, r.stderr
    return env


def test_two_turn_answers_see_the_conversation_so_far(tmp_path, cache):
    """Turn 2 sees turn 1's question and the model's own answer: as a conversation with a chat
    template, as the Alpaca input with the Alpaca template; written in model_answer format."""
    questions = {q["question_id"]: q for q in read_jsonl(MT / "mt_bench_question.jsonl")}
    for template in ("chat", "alpaca"):
        with OpenAIServer(api_key="k") as srv:
            out = tmp_path / f"{template}.jsonl"
            r = run_cli("answer", "--benchmark", "mt-bench", "--limit", "3", "--model", "openai:student",
                        "--base-url", srv.url, "--template", template, "-o", str(out),
                        env={**cache, "OPENAI_API_KEY": "k"})
            assert r.returncode == 0, r.stderr
            bodies = [x["body"] for x in srv.requests]
        rows = read_jsonl(out)
        assert [x["question_id"] for x in rows] == [81, 82, 83]
        for row in rows:
            q = questions[row["question_id"]]
            first, second = row["choices"][0]["turns"]
            assert row["choices"][0]["index"] == 0 and row["model_id"] == "student"
            if template == "chat":
                assert {"messages": [{"role": "user", "content": q["turns"][0]}, {"role": "assistant", "content": first},
                                     {"role": "user", "content": q["turns"][1]}]}.items() <= \
                    next(b for b in bodies if b["messages"][-1]["content"] == q["turns"][1]).items()
            else:
                so_far = f"User: {q['turns'][0]}\nAssistant: {first}"
                assert any(b.get("prompt") == ALPACA.prompt(q["turns"][1], so_far) for b in bodies)
                assert any(b.get("prompt") == ALPACA.prompt(q["turns"][0]) for b in bodies)
        assert len(bodies) == 6

    # the embedded model through the same path: two turns, offline
    out = tmp_path / "local.jsonl"
    r = run_cli("answer", "--benchmark", "mt-bench", "--limit", "1", "--max-tokens", "8", "-o", str(out), env=cache)
    assert r.returncode == 0, r.stderr
    [row] = read_jsonl(out)
    assert len(row["choices"][0]["turns"]) == 2 and all(row["choices"][0]["turns"])


def fastchat_prompt(q: dict, answer: list[str], ref: list[str] | None, turn: int) -> tuple[str, str, str]:
    """(system, user, name) as FastChat's run_judge_single builds them (its code, restated)."""
    math = q["category"] in ("math", "reasoning", "coding")
    name = ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")
    p = PROMPTS[name]
    kw = {}
    if math:
        kw["ref_answer_1"] = ref[0]
        if turn == 2:
            kw["ref_answer_2"] = ref[1]
    if turn == 2:
        user = p["prompt_template"].format(question_1=q["turns"][0], question_2=q["turns"][1], answer_1=answer[0],
                                           answer_2=answer[1], **kw)
    else:
        user = p["prompt_template"].format(question=q["turns"][0], answer=answer[0], **kw)
    return p["system_prompt"], user, name


# The judge's replies, by question: the forms GPT-4 writes, and one it never scores at first.
REPLIES = {81: ("The response is vivid.\n\nRating: [[8]]", 8), 92: ("Good role play. Rating: [[7.5]]", 7.5),
           101: ("The reference says second place; the assistant agrees.\n\n[[9/10]]", 9),
           # FastChat's re.search reads the FIRST [[n]]: 2, not the 10 written after it
           111: ("The answer is wrong.\nRating: [[2]]\n\nThe reference answer would get [[10]].", 2),
           121: ("The code is correct.\nRating: 6", 6), 131: ("Extraction is complete: 7/10", 7),
           141: ("Accurate.\n\nRating: [10]", 10), 151: ("It discusses the topic well, but I will not rate it.", 4)}


def judge_reply(body: dict):
    user = body["messages"][1]["content"] if len(body["messages"]) > 1 else ""
    if body["messages"][-1]["role"] == "user" and body["messages"][-1]["content"].startswith("Please output only"):
        return "[[4]]"
    turn2 = "<|The Start of Assistant A's Conversation with User|>" in user
    qid = int(re.search(r"answer to question (\d+), turn", user).group(1))
    text, _ = REPLIES.get(qid, ("Fine.\n\nRating: [[5]]", 5))
    return text.replace("[[8]]", "[[5]]") if turn2 and qid == 81 else text


def student_reply(body: dict) -> str:
    """The student served on loopback: its answer names the question and the turn it answers."""
    questions = read_jsonl(MT / "mt_bench_question.jsonl")
    last = body["messages"][-1]["content"]
    qid, turn = next((q["question_id"], t + 1) for q in questions for t, text in enumerate(q["turns"]) if text == last)
    return f"My answer to question {qid}, turn {turn}."


def test_single_grading_is_fastchats_byte_for_byte_with_references(tmp_path, cache):
    """The 80 two-turn questions answered by ``answer --benchmark mt-bench`` (the student on a loopback
    server), then graded: 160 grades, each prompt FastChat's byte for byte."""
    questions = {q["question_id"]: q for q in read_jsonl(MT / "mt_bench_question.jsonl")}
    refs = {r["question_id"]: r["choices"][0]["turns"] for r in read_jsonl(MT / "mt_bench_reference_answer_gpt-4.jsonl")}
    answers = tmp_path / "student.jsonl"
    with OpenAIServer(api_key="k", reply=student_reply) as srv:
        r = run_cli("answer", "--benchmark", "mt-bench", "--model", "openai:student", "--base-url", srv.url,
                    "-o", str(answers), env={**cache, "OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
    assert len(read_jsonl(answers)) == 80
    out = tmp_path / "grades.jsonl"
    args = ["eval", "judge", "--mode", "single", "-q", "mt-bench", "-a", str(answers), "--judge", "openai:gpt-4",
            "--base-url", None, "-o", str(out)]
    with OpenAIServer(api_key="k", reply=judge_reply) as srv:
        args[args.index(None)] = srv.url
        r = run_cli(*args, env={**cache, "OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
        firsts = [x["body"] for x in srv.requests if len(x["body"]["messages"]) == 2]
    assert len(firsts) == 160
    for body in firsts:  # byte for byte: system and user messages, temperature 0, 2048 tokens
        user = body["messages"][1]["content"]
        qid = int(re.search(r"answer to question (\d+), turn", user).group(1))
        turn = 2 if "<|The Start of Assistant A's Conversation with User|>" in user else 1
        ans = [f"My answer to question {qid}, turn 1.", f"My answer to question {qid}, turn 2."]
        system, expected, _ = fastchat_prompt(questions[qid], ans, refs.get(qid), turn)
        assert body["messages"] == [{"role": "system", "content": system}, {"role": "user", "content": expected}]
        assert body["temperature"] == 0 and body["max_tokens"] == 2048
    rows = read_jsonl(out)
    assert len(rows) == 160 and sum("Reference Answer" in r["user_prompt"] for r in rows) == 60  # 30 questions x 2
    for row in rows:
        q = questions[row["question_id"]]
        _, expected, name = fastchat_prompt(q, [f"My answer to question {q['question_id']}, turn 1.",
                                                f"My answer to question {q['question_id']}, turn 2."],
                                            refs.get(q["question_id"]), row["turn"])
        assert row["judge"] == ["gpt-4", name] and row["user_prompt"] == expected and row["model"] == "student"
        want = REPLIES.get(q["question_id"], (None, 5))[1]
        if q["question_id"] == 81 and row["turn"] == 2:
            want = 5
        assert row["score"] == want, (row["question_id"], row["turn"], row["judgment"])
    assert {r["meta"]["parse_rule"] for r in rows if r["question_id"] == 151} == {"followup"}
    s = json.loads((tmp_path / "grades.jsonl.summary.json").read_text())["models"]["student"]
    scores = [r["score"] for r in rows]
    assert s["score"] == pytest.approx(sum(scores) / len(scores), abs=1e-4) and s["scored"] == 160 and s["reasks"] == 2
    assert s["turns"]["2"]["mean"] == pytest.approx(sum(r["score"] for r in rows if r["turn"] == 2) / 80, abs=1e-4)
    assert s["categories"]["math"]["mean"] == pytest.approx((2 * 2 + 18 * 5) / 20, abs=1e-4)
    assert s["categories"]["writing"]["mean"] == pytest.approx((8 + 5 + 18 * 5) / 20, abs=1e-4)
    lo, hi = s["ci95"]
    assert lo <= s["score"] <= hi
    assert (tmp_path / "grades.jsonl.radar.png").is_file() and "turns: 1:" in r.stdout

    # again: everything from the journal, the same grades
    with OpenAIServer(api_key="k", reply=judge_reply) as srv:
        args[args.index("--base-url") + 1] = srv.url
        r = run_cli(*args, env={**cache, "OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
        assert srv.requests == []
    assert read_jsonl(out) == rows


def test_a_graded_category_without_references_is_one_line(tmp_path):
    q = write_jsonl(tmp_path / "q.jsonl", [x for x in read_jsonl(MT / "mt_bench_question.jsonl") if x["question_id"] == 111])
    a = write_jsonl(tmp_path / "a.jsonl", [{"question_id": 111, "answer_id": "x", "model_id": "m",
                                            "choices": [{"index": 0, "turns": ["1", "2"]}]}])
    r = run_cli("eval", "judge", "--mode", "single", "-q", str(q), "-a", str(a), "--judge", "openai:gpt-4",
                "-o", str(tmp_path / "g.jsonl"), env={"OPENAI_API_KEY": "k"})
    assert r.returncode == 2 and "--references" in r.stderr and "Traceback" not in r.stderr


def test_vicuna_bench_by_name_grades_2023_answers_with_references(tmp_path):
    """vicuna-bench (llm_judge's Vicuna-80) installed from ../shared by --path, graded single with
    the 2023 FastChat answers (``text``): coding and math get single-math-v1 and GPT-4's reference."""
    env = {"GPT4LLM_BENCHMARKS": str(tmp_path / "cache")}
    r = run_cli("benchmarks", "download", "vicuna-bench", "--path", str(MT / "vicuna_bench_question.jsonl"), env=env)
    assert r.returncode == 0, r.stderr
    assert "vicuna-bench" in run_cli("benchmarks", "list", env=env).stdout
    refs = {x["question_id"]: x["choices"][0]["turns"][0] for x in read_jsonl(MT / "vicuna_bench_reference_answer_gpt-4.jsonl")}
    with OpenAIServer(api_key="k", reply=lambda body: "Rating: [[6]]") as srv:
        r = run_cli("eval", "judge", "--mode", "single", "-q", "vicuna-bench", "-a",
                    str(DATA / "vicuna-eval-2023" / "answer_bard.jsonl"), "--judge", "openai:gpt-4", "--base-url", srv.url,
                    "-o", str(tmp_path / "g.jsonl"), env={**env, "OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
    rows = read_jsonl(tmp_path / "g.jsonl")
    assert len(rows) == 80 and all(x["score"] == 6 and x["turn"] == 1 for x in rows)
    with_ref = [x for x in rows if x["judge"][1] == "single-math-v1"]
    assert {x["question_id"] for x in with_ref} == set(refs) and len(refs) == 10
    assert all(refs[x["question_id"]] in x["user_prompt"] for x in with_ref)


def test_pairwise_judgments_count_as_fastchats_show_result_with_each_turns_length(tmp_path):
    """FastChat llm_judge pairwise judgments of MT-Bench's two turns (GPT-4's real reference answers
    against a terse model made from them) read into the leaderboard the way FastChat's show_result.py
    (display_result_pairwise) counts them, restated below: an error in either order drops the judgment,
    a first-order tie or two orders that disagree make a tie. Each turn's length is that turn's answer
    alone. A model that wins every game gets an unbounded Bradley-Terry score, said so in the table."""
    gpt4 = read_jsonl(MT / "mt_bench_reference_answer_gpt-4.jsonl")
    terse = [{"question_id": a["question_id"], "answer_id": f"t{a['question_id']}", "model_id": "terse",
              "choices": [{"index": 0, "turns": [t[:40] for t in a["choices"][0]["turns"]]}]} for a in gpt4]
    oracle = [dict(a, model_id="oracle", answer_id=f"o{a['question_id']}") for a in gpt4]
    files = [write_jsonl(tmp_path / f"{n}.jsonl", rows) for n, rows in (("gpt-4", gpt4), ("terse", terse),
                                                                        ("oracle", oracle))]
    patterns = [("model_1", "model_1"), ("model_2", "model_2"), ("model_1", "model_2"), ("tie", "model_1"),
                ("model_1", "tie"), ("tie", "tie"), ("error", "model_1"), ("model_2", "error"), ("model_1", "model_1")]
    judgments = []
    for k, a in enumerate(gpt4):
        for turn in (1, 2):
            g1, g2 = patterns[(2 * k + turn) % len(patterns)]
            judgments.append({"question_id": a["question_id"], "model_1": "gpt-4", "model_2": "terse", "g1_winner": g1,
                              "g2_winner": g2, "judge": ["gpt-4", "pair-v2" + ("-multi-turn" if turn == 2 else "")],
                              "turn": turn})
            judgments.append({"question_id": a["question_id"], "model_1": "oracle", "model_2": "terse",
                              "g1_winner": "model_1", "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "turn": turn})
    f = write_jsonl(tmp_path / "gpt-4_pair.jsonl", judgments)
    r = run_cli("eval", "leaderboard", "-r", str(f), *[x for a in files for x in ("-a", str(a))],
                "-o", str(tmp_path / "lb"), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    rows = {x["model"]: x for x in json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["rows"]}

    # FastChat's display_result_pairwise, restated: its counts for gpt-4 against the baseline terse
    win = loss = tie = 0
    for j in judgments:
        if j["model_1"] != "gpt-4" or "error" in (j["g1_winner"], j["g2_winner"]):
            continue
        if j["g1_winner"] == "tie" or j["g1_winner"] != j["g2_winner"]:
            tie += 1
        elif j["g1_winner"] == "model_1":
            win += 1
        else:
            loss += 1
    row = rows["gpt-4"]
    assert (row["n_wins"], row["n_wins_base"], row["n_draws"], row["n_total"]) == (win, loss, tie, win + loss + tie)
    assert row["win_rate"] == pytest.approx(100 * (win + 0.5 * tie) / (win + loss + tie), abs=1e-9)
    assert row["n_missing"] == sum("error" in (j["g1_winner"], j["g2_winner"]) for j in judgments)
    # lengths: each judged turn's own answer (turn 1 alone, turn 2 alone), over every judgment of the model
    turn_lens = [len(a["choices"][0]["turns"][t]) for a in gpt4 for t in (0, 1)]
    assert row["avg_length"] == int(sum(turn_lens) / len(turn_lens))
    assert row["length_controlled_winrate"] is not None and row["lc_shared_slope_winrate"] is not None

    # the oracle wins all 60 games: no finite score; the interval's upper end is null (+inf in the CSV)
    o = rows["oracle"]
    assert o["bt_score"] is None and o["ci95"][1] is None and o["ci95"][0] > 1000 and o["bt_win_rate"] == 100.0
    assert "unbounded above" in o["note"] and "unbounded" in r.stdout
    csv_row = next(x for x in (tmp_path / "lb" / "leaderboard.csv").read_text().splitlines() if x.startswith("oracle,"))
    assert f"{o['ci95'][0]};inf" in csv_row
