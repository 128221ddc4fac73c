"""``eval agreement`` (issue 16): the judge's reviews, made by the real ``eval judge`` against a
loopback judge, joined with a human database built through the real ``eval human`` page over
HTTP (log in with the token, read the form, post the choices as a browser would)."""

import json
import re

import pytest
from support import DATA, read_jsonl, run_cli, write_jsonl
from support.human import annotate
from support.openai_server import OpenAIServer

VICUNA = DATA / "vicuna-eval-2023"
N = 8
BIASED = {3, 6}  # questions where the judge always prefers Assistant 1 (a verdict that flips with the order)


def answer_text(content: str, k: int) -> str:
    return re.search(rf"\[The Start of Assistant {k}'s Answer\]\n(.*?)\n\[The End of Assistant {k}'s Answer\]",
                     content, re.S).group(1)


def verdict(body: dict) -> str:
    """The stand-in judge: the longer answer wins 8 to 6; on the BIASED questions Assistant 1 wins."""
    user = body["messages"][-1]["content"]
    a1, a2 = answer_text(user, 1), answer_text(user, 2)
    qid = next(q["question_id"] for q in QUESTIONS if q["text"] in user)
    if qid in BIASED:
        return "9 5\nAssistant 1 is better."
    return "8 6\nThe first is more complete." if len(a1) > len(a2) else "6 8\nThe second is more complete."


QUESTIONS = read_jsonl(VICUNA / "question.jsonl")[:N]


@pytest.fixture
def files(tmp_path):
    qf = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    ans = {m: write_jsonl(tmp_path / f"answer_{m}.jsonl", read_jsonl(VICUNA / f"answer_{m}.jsonl")[:N])
           for m in ("vicuna-13b", "gpt35")}
    return qf, ans


def human_votes(tmp_path, ans, votes) -> object:
    """Two annotators vote through the real page; ``votes(annotator, qid)`` in model terms (a = vicuna-13b)."""
    a = {x["question_id"]: x for x in read_jsonl(ans["vicuna-13b"])}
    b = {x["question_id"]: x for x in read_jsonl(ans["gpt35"])}
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": f"q{q['question_id']}", "instruction": q["text"], "input": "", "qid": q["question_id"],
         "a": {"model": "vicuna-13b", "text": a[q["question_id"]]["text"]},
         "b": {"model": "gpt-3.5-turbo", "text": b[q["question_id"]]["text"]}} for q in QUESTIONS])
    db = tmp_path / "human.sqlite"
    annotate(pairs, db, 2, lambda k, pair: votes(k, pair["qid"]))
    return db


def kappa(pairs) -> float:
    labels = sorted({x for p in pairs for x in p})
    n = len(pairs)
    po = sum(j == h for j, h in pairs) / n
    pe = sum((sum(j == c for j, _ in pairs) / n) * (sum(h == c for _, h in pairs) / n) for c in labels)
    return (po - pe) / (1 - pe)


def test_judge_against_humans_through_the_real_page(tmp_path, files):
    qf, ans = files
    with OpenAIServer(api_key="k", reply=verdict) as srv:
        r = run_cli("eval", "judge", "-q", str(qf), "-a", str(ans["vicuna-13b"]), "-r", str(ans["gpt35"]),
                    "--judge", "openai:gpt-4", "--base-url", srv.url, "-o", str(tmp_path / "reviews.jsonl"),
                    env={"OPENAI_API_KEY": "k"})
    assert r.returncode == 0, r.stderr
    a = {x["question_id"]: x["text"] for x in read_jsonl(ans["vicuna-13b"])}
    b = {x["question_id"]: x["text"] for x in read_jsonl(ans["gpt35"])}
    judge = {q: "tie" if q in BIASED else "a" if len(a[q]) > len(b[q]) else "b" for q in a}

    def votes(k, qid):
        longer = "a" if len(a[qid]) > len(b[qid]) else "b"
        other = "b" if longer == "a" else "a"
        # annotator 1 agrees with length except on question 2; annotator 2 calls the biased ones ties
        help_ = (other if qid == 2 else longer) if k == 0 else ("tie" if qid in BIASED else longer)
        return {"helpfulness": help_, "honesty": "tie" if qid % 2 else longer, "harmlessness": "a"}

    db = human_votes(tmp_path, ans, votes)
    out = tmp_path / "agreement.json"
    r = run_cli("eval", "agreement", "-r", str(tmp_path / "reviews.jsonl"), "-q", str(qf), "-a", str(ans["vicuna-13b"]),
                "-a", str(ans["gpt35"]), "--human-db", str(db), "-o", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["pairs_matched"] == N and rep["pairs_in_both_orders"] == N
    assert rep["position_consistency"] == (N - len(BIASED)) / N
    for crit in ("helpfulness", "honesty", "harmlessness"):
        pairs = [(judge[q["question_id"]], votes(k, q["question_id"])[crit]) for k in (0, 1) for q in QUESTIONS]
        got = rep["per_criterion"][crit]
        assert got["votes"] == 2 * N
        assert got["agreement"] == pytest.approx(sum(j == h for j, h in pairs) / len(pairs), abs=1e-4)
        assert got["kappa"] == pytest.approx(kappa(pairs), abs=1e-4)
        no_ties = [(j, h) for j, h in pairs if "tie" not in (j, h)]
        assert got["votes_without_ties"] == len(no_ties)
        assert got["agreement_without_ties"] == pytest.approx(sum(j == h for j, h in no_ties) / len(no_ties), abs=1e-4)
        counts = got["confusion"]["counts"]
        assert sum(map(sum, counts)) == 2 * N
        assert counts[2][2] == sum(1 for j, h in pairs if j == h == "tie")
    assert rep["agreement"] == rep["per_criterion"]["helpfulness"]["agreement"]
    assert "position consistency" in r.stdout and "kappa" in r.stdout

    # a database whose pairs the judge never saw: one line, exit 2
    other = tmp_path / "other.jsonl"
    write_jsonl(other, [dict(x, text=x["text"] + " (edited)") for x in read_jsonl(ans["gpt35"])])
    r = run_cli("eval", "agreement", "-r", str(tmp_path / "reviews.jsonl"), "-q", str(qf), "-a", str(ans["vicuna-13b"]),
                "-a", str(other), "--human-db", str(db), "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "was reviewed by the judge" in r.stderr and "Traceback" not in r.stderr
