"""``--score-mode logprobs``: a small local judge's expected score over its score-token
probabilities, for compare and eval judge, on real Vicuna-80 answers."""

import json
import math
import sqlite3

import pytest
from support import DATA, read_jsonl, run_cli, write_jsonl

from gpt4llm.compare import rating_prompt
from gpt4llm.errors import UserError
from gpt4llm.logprob_scores import expected_scores

VICUNA = DATA / "vicuna-eval-2023"


def test_expected_scores_are_a_distribution_over_1_to_10():
    chats = [[{"role": "user", "content": rating_prompt("Name a prime number.", "", answer)}]
             for answer in ("7 is a prime number.", "Bananas are yellow.")]
    scores = expected_scores("local:smollm2-135m-instruct", chats, batch_size=2)
    for e in scores:
        assert 1 <= e.score <= 10 and 0 < e.mass <= 1 and e.best in range(1, 11)
    again = expected_scores("local:smollm2-135m-instruct", chats, batch_size=1)  # batching changes nothing
    assert all(math.isclose(a.score, b.score, abs_tol=1e-3) for a, b in zip(scores, again))


def test_remote_judges_are_refused():
    with pytest.raises(UserError, match="not local"):
        expected_scores("openai:gpt-4", [[{"role": "user", "content": "x"}]])


def test_compare_and_judge_with_logprob_scores(tmp_path):
    questions = [json.loads(x) for x in (VICUNA / "question.jsonl").read_text().splitlines()[:3]]
    q = write_jsonl(tmp_path / "q.jsonl", questions)
    out = tmp_path / "cmp.jsonl"
    r = run_cli("compare", "-i", str(q), "-r", str(VICUNA / "answer_bard.jsonl"), "-r", str(VICUNA / "answer_llama-13b.jsonl"),
                "-o", str(out), "--score-mode", "logprobs", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "cmp.jsonl.report.json").read_text())
    assert report["score_mode"] == "logprobs" and report["parse_failures"] == 0 and 0 < report["mean_score_token_mass"] <= 1
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(1 <= x["score"] <= 10 for row in rows for x in row["responses_and_scores"])
    r = run_cli("eval", "judge", "-q", str(q), "-a", str(VICUNA / "answer_llama-13b.jsonl"), "-r",
                str(VICUNA / "answer_bard.jsonl"), "-o", str(tmp_path / "rev.jsonl"), "--score-mode", "logprobs")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "rev.jsonl.summary.json").read_text())["models"]["llama-13b:v1"]
    assert s["questions"] == 3 and s["scored"] == 3 and s["parse_failures"] == 0 and s["flip_rate"] is not None
    for review in read_jsonl(tmp_path / "rev.jsonl"):
        assert len(review["score"]) == 2 and all(1 <= x <= 10 for x in review["score"]) and "mass" in review["text"]
    # journaled like any call: the same commands again, outputs deleted, compute nothing and write the same
    journaled = {}
    for name in ("cmp.jsonl", "rev.jsonl"):
        with sqlite3.connect(tmp_path / f"{name}.journal.sqlite") as db:
            journaled[name] = db.execute("SELECT key, created FROM calls WHERE backend = 'local-logprobs'").fetchall()
    assert len(journaled["cmp.jsonl"]) == 6 and len(journaled["rev.jsonl"]) == 6  # 3 questions x 2 answers / 2 orders
    before = {name: (tmp_path / name).read_bytes() for name in journaled}
    for name in journaled:
        (tmp_path / name).unlink()
    r = run_cli("compare", "-i", str(q), "-r", str(VICUNA / "answer_bard.jsonl"), "-r", str(VICUNA / "answer_llama-13b.jsonl"),
                "-o", str(out), "--score-mode", "logprobs", "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", "judge", "-q", str(q), "-a", str(VICUNA / "answer_llama-13b.jsonl"), "-r",
                str(VICUNA / "answer_bard.jsonl"), "-o", str(tmp_path / "rev.jsonl"), "--score-mode", "logprobs")
    assert r.returncode == 0, r.stderr
    for name in journaled:
        with sqlite3.connect(tmp_path / f"{name}.journal.sqlite") as db:
            assert db.execute("SELECT key, created FROM calls WHERE backend = 'local-logprobs'").fetchall() == journaled[name]
        assert (tmp_path / name).read_bytes() == before[name]


def test_plots_paper_redraws_the_published_figures(tmp_path):
    r = run_cli("plots", "paper", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for stem in ("paper_judge_vs_gpt4", "paper_judge_vs_chatgpt", "paper_ranking_groups_vs_gpt4", "paper_chinese_vs_gpt4",
                 "paper_rouge_by_length", "paper_human_gpt4", "paper_human_alpaca"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 5000 and (tmp_path / f"{stem}.svg").exists()
    assert "arXiv:2304.03277" in r.stdout
