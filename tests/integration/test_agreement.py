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


def human_votes(tmp_path, ans, votes, annotators: int = 2) -> object:
    """Annotators vote through the real page; ``votes(annotator, qid)`` in model terms (a = vicuna-13b)."""
    a = {x["question_id"]: x for x in read_jsonl(ans["vicuna-13b"])}
    b = {x["question_id"]: x for x in read_jsonl(ans["gpt35"])}
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": f"q{q['question_id']}", "instruction": q["text"], "input": "", "qid": q["question_id"],
         "a": {"model": "vicuna-13b", "text": a[q["question_id"]]["text"]},
         "b": {"model": "gpt-3.5-turbo", "text": b[q["question_id"]]["text"]}} for q in QUESTIONS])
    db = tmp_path / "human.sqlite"
    annotate(pairs, db, annotators, lambda k, pair: votes(k, pair["qid"]))
    return db


def kappa(pairs) -> float | None:
    """Cohen's kappa, (po - pe) / (1 - pe); undefined (None) when pe = 1 (both raters always chose one label)."""
    labels = sorted({x for p in pairs for x in p})
    n = len(pairs)
    po = sum(j == h for j, h in pairs) / n
    pe = sum((sum(j == c for j, _ in pairs) / n) * (sum(h == c for _, h in pairs) / n) for c in labels)
    return None if pe == 1 else (po - pe) / (1 - pe)


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
        expected = kappa(no_ties)
        assert got["kappa_without_ties"] == (None if expected is None else pytest.approx(expected, abs=1e-4)), crit
        counts = got["confusion"]["counts"]
        assert sum(map(sum, counts)) == 2 * N
        assert counts[2][2] == sum(1 for j, h in pairs if j == h == "tie")
    assert rep["agreement"] == rep["per_criterion"]["helpfulness"]["agreement"]
    assert "position consistency" in r.stdout and "kappa" in r.stdout
    # two people on 8 items: 8 pairs of votes, too few for a human level: the judge is measured by kappa
    mine = rep["judges"]["openai:gpt-4"]
    expected = kappa([(judge[q["question_id"]], votes(k, q["question_id"])["helpfulness"]) for k in (0, 1) for q in QUESTIONS])
    assert rep["human_agreement"]["helpfulness"] == {"pairs": 8, "agreement": 0.625}  # q2, q3, q6 differ
    assert mine["accepted"] == (expected >= 0.4) and "--min-kappa 0.4" in mine["rule"]

    # a database whose pairs the judge never saw: one line, exit 2
    other = tmp_path / "other.jsonl"
    write_jsonl(other, [dict(x, text=x["text"] + " (edited)") for x in read_jsonl(ans["gpt35"])])
    r = run_cli("eval", "agreement", "-r", str(tmp_path / "reviews.jsonl"), "-q", str(qf), "-a", str(ans["vicuna-13b"]),
                "-a", str(other), "--human-db", str(db), "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "was reviewed by the judge" in r.stderr and "Traceback" not in r.stderr


def edge_verdict(body: dict) -> str:
    """The stand-in judge of the edge cases: between two identical answers Assistant 2 (a position
    bias, so the verdict flips with the order); an answer reading "tie" wins; else the longer."""
    user = body["messages"][-1]["content"]
    a1, a2 = answer_text(user, 1).strip(), answer_text(user, 2).strip()
    if a1 == a2:
        return "6 8\nAssistant 2 is better."
    if "tie" in (a1, a2):
        return "9 2\nAssistant 1 is right." if a1 == "tie" else "2 9\nAssistant 2 is right."
    return "8 6\nThe first is more complete." if len(a1) > len(a2) else "6 8\nThe second is more complete."


def test_an_answer_reading_tie_and_two_identical_answers(tmp_path):
    """The judge's winner is a side of the pair, not a text: q1's second answer is the word "tie"
    (and wins), q2's two answers are the same text, q4's second answer is the longer one."""
    qs = QUESTIONS[:4]
    a = read_jsonl(VICUNA / "answer_vicuna-13b.jsonl")[:4]
    b = read_jsonl(VICUNA / "answer_gpt35.jsonl")[:4]
    b[0]["text"], b[1]["text"], b[3]["text"] = "tie", a[1]["text"], a[3]["text"] + " Also: rest well."
    qf = write_jsonl(tmp_path / "q.jsonl", qs)
    fa, fb = write_jsonl(tmp_path / "a.jsonl", a), write_jsonl(tmp_path / "b.jsonl", b)
    with OpenAIServer(api_key="k", reply=edge_verdict) as srv:
        for orders in ("both", "paper"):  # paper: the first file's answer as Assistant 1 only
            r = run_cli("eval", "judge", "-q", str(qf), "-a", str(fa), "-r", str(fb), "--judge", "openai:gpt-4",
                        "--base-url", srv.url, "--orders", orders, "-o", str(tmp_path / f"reviews_{orders}.jsonl"),
                        env={"OPENAI_API_KEY": "k"})
            assert r.returncode == 0, r.stderr
    # the human items carry the answers' model_id: the only way to tell two identical texts apart
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": f"q{q['question_id']}", "instruction": q["text"], "input": "", "qid": q["question_id"],
         "a": {"model": x["model_id"], "text": x["text"]}, "b": {"model": y["model_id"], "text": y["text"]}}
        for q, x, y in zip(qs, a, b)])
    # helpfulness (annotator 0, annotator 1); on the identical answers only a tie means anything
    helpful = {1: ("b", "a"), 2: ("tie", "tie"), 3: ("a", "tie"), 4: ("a", "b")}
    db = tmp_path / "human.sqlite"
    annotate(pairs, db, 2, lambda k, p: {"helpfulness": helpful[p["qid"]][k], "honesty": "tie", "harmlessness": "tie"})

    def agreement(reviews: list[str], *answers):
        out = tmp_path / "agreement.json"
        r = run_cli("eval", "agreement", *(x for f in reviews for x in ("-r", str(tmp_path / f))), "-q", str(qf), *answers,
                    "--human-db", str(db), "-o", str(out))
        assert r.returncode == 0, r.stderr
        return json.loads(out.read_text())

    # Both orders. The judge: q1 b (the answer "tie" won both orders), q2 tie (Assistant 2 won both
    # orders: a different answer each time), q3 a, q4 b (the longer). (judge, human) votes:
    # (b,b) (b,a) (tie,tie) (tie,tie) (a,a) (a,tie) (b,a) (b,b): 5 of 8 agree.
    # kappa: judge a/b/tie 2/4/2 of 8, humans 3/2/3: pe = (2*3 + 4*2 + 2*3) / 64 = 0.3125,
    # (0.625 - 0.3125) / (1 - 0.3125) = 5/11. Without ties: (b,b) (b,a) (a,a) (b,a) (b,b): po = 3/5,
    # judge a/b 1/4, humans a/b 3/2: pe = (1*3 + 4*2) / 25 = 0.44, (0.6 - 0.44) / 0.56 = 2/7.
    rep = agreement(["reviews_both.jsonl"], "-a", str(fa), "-a", str(fb))
    assert rep["pairs_matched"] == 4 and rep["pairs_in_both_orders"] == 4
    assert rep["position_consistency"] == 0.75  # q2's verdict flips with the order
    assert rep["confusion"]["counts"] == [[1, 0, 1], [2, 2, 0], [0, 0, 2]]  # rows: judge a/b/tie
    assert (rep["votes"], rep["agreement"], rep["votes_without_ties"], rep["agreement_without_ties"]) == (8, 0.625, 5, 0.6)
    assert rep["kappa"] == pytest.approx(5 / 11, abs=1e-4) and rep["kappa"] == pytest.approx(kappa(
        [("b", "b"), ("b", "a"), ("tie", "tie"), ("tie", "tie"), ("a", "a"), ("a", "tie"), ("b", "a"), ("b", "b")]), abs=1e-4)
    assert rep["kappa_without_ties"] == pytest.approx(2 / 7, abs=1e-4) and rep["pairs_unplaced"] == 0

    # One order (the paper's), its file read twice (still one order): on q2 Assistant 2, the second
    # file's answer, won: the item's b, found through the models. Judge b, b, a, b, same votes.
    rep = agreement(["reviews_paper.jsonl", "reviews_paper.jsonl"], "-a", str(fa), "-a", str(fb))
    assert rep["pairs_matched"] == 4 and rep["pairs_in_both_orders"] == 0 and rep["position_consistency"] is None
    assert rep["confusion"]["counts"] == [[1, 0, 1], [2, 2, 2], [0, 0, 0]]
    # answers whose model_id is not the item's: q2's preference between two equal texts cannot be placed
    renamed = [write_jsonl(tmp_path / f"renamed_{i}.jsonl", [dict(x, model_id=f"m{i}") for x in rows])
               for i, rows in enumerate((a, b))]
    rep = agreement(["reviews_paper.jsonl"], "-a", str(renamed[0]), "-a", str(renamed[1]))
    assert rep["pairs_matched"] == 3 and rep["pairs_unplaced"] == 1 and rep["votes"] == 6
    assert rep["confusion"]["counts"] == [[1, 0, 1], [2, 2, 0], [0, 0, 0]]


def test_each_judge_of_a_panel_against_the_same_people(tmp_path, files):
    """A panel's judges, each measured against the same three people and accepted or rejected
    against the people's agreement with each other."""
    qf, ans = files

    def two_judges(body):
        if body["model"] == "gpt-4":
            return verdict(body)  # the longer answer wins, except on BIASED (Assistant 1 wins: flips)
        user = body["messages"][-1]["content"]
        return "8 6\nLonger." if len(answer_text(user, 1)) > len(answer_text(user, 2)) else "6 8\nLonger."

    with OpenAIServer(api_key="k", reply=two_judges) as srv:
        r = run_cli("eval", "judge", "-q", str(qf), "-a", str(ans["vicuna-13b"]), "-r", str(ans["gpt35"]),
                    "--judge", "openai:gpt-4", "--judge", "openai:judge-b", "--base-url", srv.url,
                    "-o", str(tmp_path / "reviews.jsonl"), env={"OPENAI_API_KEY": "k"})
    assert r.returncode == 0, r.stderr
    a = {x["question_id"]: x["text"] for x in read_jsonl(ans["vicuna-13b"])}
    b = {x["question_id"]: x["text"] for x in read_jsonl(ans["gpt35"])}
    longer = {q: "a" if len(a[q]) > len(b[q]) else "b" for q in a}
    # three people choose the longer answer, except the third calls questions 1 and 2 ties
    db = human_votes(tmp_path, ans, lambda k, q: {"helpfulness": "tie" if k == 2 and q in (1, 2) else longer[q],
                                                   "honesty": "tie", "harmlessness": "tie"}, annotators=3)
    out = tmp_path / "agreement.json"
    r = run_cli("eval", "agreement", "-r", str(tmp_path / "reviews.jsonl"), "-r", str(tmp_path / "reviews_openai-gpt-4.jsonl"),
                "-r", str(tmp_path / "reviews_openai-judge-b.jsonl"), "-q", str(qf), "-a", str(ans["vicuna-13b"]),
                "-a", str(ans["gpt35"]), "--human-db", str(db), "-o", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    # people with each other: 3 pairs per item; on q1 and q2 one of three agrees: (2 * 1 + 6 * 3) / 24
    assert rep["human_agreement"]["helpfulness"] == {"pairs": 24, "agreement": round(20 / 24, 4)}
    judges = rep["judges"]
    assert list(judges) == ["panel:majority(openai:gpt-4, openai:judge-b)", "openai:gpt-4", "openai:judge-b"]
    # gpt-4: ties on q3 and q6 (its verdict flips), the longer elsewhere: 2 + 2 + 0 + 0 + 4 * 3 = 16 of 24 votes
    # judge-b: always the longer: 2 + 2 + 6 * 3 = 22 of 24; the panel of the two: ties on q3 and q6 as gpt-4
    assert [judges[j]["agreement"] for j in judges] == [round(16 / 24, 4), round(16 / 24, 4), round(22 / 24, 4)]
    assert [judges[j]["accepted"] for j in judges] == [False, False, True]
    assert "the people's own agreement (24 pairs of votes)" in judges["openai:judge-b"]["rule"]
    people = [(h, ("tie" if q in BIASED else longer[q])) for q in a
              for h in ("tie" if k == 2 and q in (1, 2) else longer[q] for k in range(3))]
    assert judges["openai:gpt-4"]["kappa"] == pytest.approx(kappa([(j, h) for h, j in people]), abs=1e-4)
    assert "REJECTED openai:gpt-4: agreement 66.7%" in r.stdout and "ACCEPTED openai:judge-b: agreement 91.7%" in r.stdout
    # a level of one's own
    r = run_cli("eval", "agreement", "-r", str(tmp_path / "reviews_openai-gpt-4.jsonl"), "-q", str(qf),
                "-a", str(ans["vicuna-13b"]), "-a", str(ans["gpt35"]), "--human-db", str(db), "-o", str(out),
                "--accept-agreement", "0.6")
    assert r.returncode == 0 and json.loads(out.read_text())["judges"]["openai:gpt-4"]["accepted"] is True

