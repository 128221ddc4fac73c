"""``gpt4llm compare`` end to end: the embedded judge scores real Vicuna-80 answers of three
models. A 135M judge scores poorly; this checks the mechanics: v2 output, re-asks, failure
accounting (no default score, ever), the report and the figure, resume, and the export."""

import json
import sqlite3

from support import DATA, read_jsonl, run_cli, write_jsonl

from gpt4llm.compare import rating_prompt

VICUNA = DATA / "vicuna-eval-2023"


def test_compare_vicuna_answers_with_the_embedded_judge(tmp_path):
    questions = [json.loads(x) for x in (VICUNA / "question.jsonl").read_text().splitlines()[:4]]
    qfile = write_jsonl(tmp_path / "q.jsonl", questions)
    out = tmp_path / "cmp.jsonl"
    args = ("compare", "-i", str(qfile), "-r", str(VICUNA / "answer_bard.jsonl"), "-r", str(VICUNA / "answer_gpt35.jsonl"),
            "-r", str(VICUNA / "answer_llama-13b.jsonl"), "-o", str(out), "--max-tokens", "6", "--max-reasks", "1", "-q")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "cmp.jsonl.report.json").read_text())
    rows = read_jsonl(out)
    assert report["prompts"] == 4 and report["prompts_written"] == len(rows)
    assert report["prompts_written"] + report["prompts_skipped_fewer_than_2_scored"] == 4
    bard = {json.loads(x)["question_id"]: json.loads(x)["text"] for x in (VICUNA / "answer_bard.jsonl").read_text().splitlines()}
    n_scored = 0
    for row in rows:
        assert row["user_input"].startswith("Below is an instruction that describes a task.")
        for x in row["responses_and_scores"]:
            assert 1 <= x["score"] <= 10 and x["source"] in {"bard:20230327", "gpt-3.5-turbo:20230327", "llama-13b:v1"}
            n_scored += 1
        for f in row["meta"]["failed"]:  # failures keep the judge's raw text and never get a score
            assert "score" not in f and f["status"] == "parse_failed" and "raw" in f and f["attempts"] == 2
        assert next(x for x in row["responses_and_scores"] + row["meta"]["failed"]
                    if x["source"].startswith("bard"))["response"] == bard[row["meta"]["question_id"]]
    assert sum(s["n"] for s in report["sources"].values()) == n_scored
    assert (tmp_path / "cmp.jsonl.scores.png").exists() or n_scored == 0
    # Every response was asked once, the unread ones followed up once in the same conversation, nothing else.
    db = sqlite3.connect(tmp_path / "cmp.jsonl.journal.sqlite")
    turns = [len(json.loads(req)["messages"]) for (req,) in db.execute("SELECT request FROM calls")]
    assert turns.count(1) == 12 and len(turns) == 12 + turns.count(3) and turns.count(3) == report["reasks"]
    assert turns.count(3) >= report["parse_failures"]  # the followed-up ones that still failed are reported
    first = json.loads(db.execute("SELECT request FROM calls LIMIT 1").fetchone()[0])["messages"][0]["content"]
    assert first.startswith("### Instruction \n\n") and first.endswith("avoiding any potential bias.")
    before = out.read_bytes()
    r = run_cli(*args)
    assert r.returncode == 0 and "model calls: 0 made" in r.stdout and out.read_bytes() == before
    # Export: pairs of different scores only.
    r = run_cli("compare", "export", "-i", str(out), "--to", "trl", "-o", str(tmp_path / "pairs.jsonl"))
    assert r.returncode == 0, r.stderr
    for p in read_jsonl(tmp_path / "pairs.jsonl"):
        assert p["margin"] > 0 and p["chosen"] != p["rejected"]


def test_response_files_missing_prompts_are_listed(tmp_path):
    q = write_jsonl(tmp_path / "q.jsonl", [{"question_id": 1, "text": "a?"}, {"question_id": 2, "text": "b?"},
                                           {"question_id": 3, "text": "c?"}])
    a = write_jsonl(tmp_path / "a.jsonl", [{"question_id": i, "answer_id": str(i), "model_id": "A", "text": "x"} for i in (1, 2, 3)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"question_id": 1, "answer_id": "1", "model_id": "B", "text": "y"}])
    r = run_cli("compare", "-i", str(q), "-r", str(a), "-r", str(b), "-o", str(tmp_path / "c.jsonl"))
    assert r.returncode == 2 and "b.jsonl: no response for 2 of 3 prompts (ids 2, 3)" in r.stderr and "--allow-missing" in r.stderr
    assert not (tmp_path / "c.jsonl").exists()


def test_identical_responses_are_scored_once(tmp_path, openai_server, openai_env):
    q = write_jsonl(tmp_path / "q.jsonl", [{"question_id": 1, "text": "a?"}])
    files = [write_jsonl(tmp_path / f"{m}.jsonl", [{"question_id": 1, "answer_id": m, "model_id": m, "text": t}])
             for m, t in (("A", "same"), ("B", "same"), ("C", "other"))]
    openai_server.fault = lambda content: None
    r = run_cli("compare", "-i", str(q), *sum((["-r", str(f)] for f in files), []), "-o", str(tmp_path / "c.jsonl"),
                "--judge", "openai:judge", "-q", env=openai_env)
    # The loopback server answers "answer <hash>": no score on the first line, so all fail to parse.
    assert r.returncode == 0, r.stderr
    asked = [x["body"]["messages"] for x in openai_server.requests if x["body"]["messages"][0]["content"] == rating_prompt("a?", "", "same")]
    assert [len(m) for m in asked] == [1, 3, 5]  # asked once + 2 follow-ups in one conversation, not twice that
    report = json.loads((tmp_path / "c.jsonl.report.json").read_text())
    assert report["identical_responses_removed"] == 1 and report["parse_failures"] == 2
    assert report["prompts_skipped_fewer_than_2_scored"] == 1 and read_jsonl(tmp_path / "c.jsonl") == []


RATINGS = [  # (the judge's reply, the score read from it without a follow-up)
    ("8\nThe response is accurate and complete.", 8), ("Score: 9/10\nClear and correct.", 9),
    ("7 out of 10\nIt misses one of the 3 steps.", 7), ("**6**\n\nVague in places.", 6), ("10\nPerfect.", 10),
    ("The response answers the question with 2 examples and is well organised.\n\nScore: 8/10", 8),
    ("It is relevant but shallow.\n\nOverall, I would rate this response a 5 out of 10.", 5),
    ("Rating: 4/10\nThe answer is mostly wrong.", 4), ("9.5\nExcellent.", 9.5), ("3 - largely irrelevant", 3),
]
FOLLOWED = [  # (reply, the judge's answer to the follow-up, score)
    ("I would rate it 3 or 4 out of 10.", "4", 4),   # ambiguous
    ("11\nOutstanding.", "10", 10),                   # outside the prompt's 1-10 scale
    ("0\nNo answer.", "1", 1),
]


def test_compare_reads_ratings_as_judges_write_them(tmp_path, openai_server, openai_env):
    texts = RATINGS + [(t, s) for t, _, s in FOLLOWED]
    q = write_jsonl(tmp_path / "q.jsonl", [{"question_id": i, "text": f"question {i}?"} for i in range(len(texts))])
    a = write_jsonl(tmp_path / "a.jsonl", [{"question_id": i, "answer_id": f"a{i}", "model_id": "A", "text": f"answer A{i}"}
                                           for i in range(len(texts))])
    b = write_jsonl(tmp_path / "b.jsonl", [{"question_id": i, "answer_id": f"b{i}", "model_id": "B", "text": f"answer B{i}"}
                                           for i in range(len(texts))])
    followup = {t: f for t, f, _ in FOLLOWED}

    def reply(body):
        msgs = body["messages"]
        i = int(msgs[0]["content"].split("question ")[1].split("?")[0])
        text = texts[i][0]
        return text if len(msgs) == 1 else followup[text]

    openai_server.reply = reply
    out = tmp_path / "c.jsonl"
    r = run_cli("compare", "-i", str(q), "-r", str(a), "-r", str(b), "-o", str(out), "--judge", "openai:gpt-4", "-q",
                env=openai_env)
    assert r.returncode == 0, r.stderr
    rows = {row["meta"]["question_id"]: row for row in read_jsonl(out)}
    for i, (_, score) in enumerate(texts):
        assert [x["score"] for x in rows[i]["responses_and_scores"]] == [score, score]
    report = json.loads((tmp_path / "c.jsonl.report.json").read_text())
    assert report["reasks"] == 2 * len(FOLLOWED) and report["reasks_rescued"] == 2 * len(FOLLOWED)
    assert report["parse_rules"] == {"first_line": 2 * 8, "explicit": 2 * 2, "followup": 2 * 3}
    assert report["reask_cost_usd"] > 0 and report["parse_failures"] == 0
    assert len(openai_server.requests) == 2 * len(texts) + 2 * len(FOLLOWED)
