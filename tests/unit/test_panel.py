"""Judge panels on constructed verdicts: the panel's verdict, the judges' agreement with each other
(against kappas computed by hand), the self-preference flags and the judge-fingerprint refusal."""

import pytest

from gpt4llm.errors import UserError
from gpt4llm.eval import families, judge_fingerprint, panel


def review(qid, score, order="model_first", model="student"):
    return {"question_id": qid, "score": score, "answer1_id": "a", "answer2_id": "b",
            "meta": {"model_id": model, "reference_id": "ref", "order": order, "parse_status": "ok"}}


def test_majority_and_mean_verdicts_by_hand():
    # three judges: win, tie, win for Assistant 1 -> Assistant 1 wins with the mean of the two winners' scores
    assert panel.verdict([[8, 6], [7, 7], [9, 5]], "majority") == [8.5, 5.5]
    assert panel.verdict([[3, 8], [6, 5], [2, 9]], "majority") == [2.5, 8.5]
    # no outcome has the most: a tie at the mean of every score given ((8 + 6 + 5 + 9) / 4 = 7)
    assert panel.verdict([[8, 6], [5, 9]], "majority") == [7, 7]
    assert panel.verdict([[8, 6], [7, 7], [5, 9]], "majority") == [7, 7]
    # mean: position by position, (8 + 7 + 5) / 3 and (6 + 7 + 9) / 3
    assert panel.verdict([[8, 6], [7, 7], [5, 9]], "mean") == [6.6667, 7.3333]
    # judges without a verdict are left out; none at all is no verdict
    assert panel.verdict([[-1, -1], [4, 6]], "majority") == [4, 6]
    assert panel.verdict([[-1, -1]], "mean") is None


def test_combine_writes_one_review_per_item_with_each_judges_scores():
    a = [review(1, [8, 6]), review(1, [6, 8], "reference_first"), review(2, [-1, -1])]
    b = [review(1, [5, 9]), review(1, [7, 7], "reference_first"), review(2, [-1, -1])]
    c = [review(1, [9, 5]), review(1, [4, 9], "reference_first"), review(2, [3, 3])]
    out = panel.combine({"openai:a": a, "openai:b": b, "openai:c": c}, "majority")
    assert [r["score"] for r in out] == [[8.5, 5.5], [5, 8.5], [3, 3]]
    assert out[0]["meta"]["panel"]["scores"] == {"openai:a": [8, 6], "openai:b": [5, 9], "openai:c": [9, 5]}
    assert out[2]["meta"]["panel"]["scores"]["openai:a"] is None and out[2]["meta"]["parse_status"] == "ok"
    assert out[1]["meta"]["order"] == "reference_first" and out[0]["meta"]["judge"].startswith("panel:majority(")
    none = panel.combine({"x": [review(3, [-1, -1])], "y": [review(3, [-1, -1])]}, "mean")
    assert none[0]["score"] == [-1, -1] and none[0]["meta"]["parse_status"] == "parse_failed"


# Ten items' outcomes of the evaluated model (win/tie/loss) by judges A and B, alternating orders so that
# reading a reference-first review from the model's side is part of what is checked.
A = "W W W W T T L L L W".split()
B = "W W W L T L L L W W".split()


def reviews_of(outcomes):
    rows = []
    for i, o in enumerate(outcomes):
        model_side = {"W": 9, "T": 7, "L": 5}[o]
        order = "model_first" if i % 2 == 0 else "reference_first"
        rows.append(review(i, [model_side, 7] if order == "model_first" else [7, model_side], order))
    return rows


def test_pairwise_agreement_and_cohens_kappa_by_hand():
    got = panel.agreement({"A": reviews_of(A), "B": reviews_of(B)})
    pair = got["pairs"][0]
    # 7 of 10 outcomes equal; marginals A (W 5, T 2, L 3), B (W 5, T 1, L 4):
    # p_e = (5*5 + 2*1 + 3*4) / 100 = 0.39, kappa = (0.7 - 0.39) / (1 - 0.39) = 0.5082
    assert pair["items"] == 10 and pair["agreement"] == 0.7
    assert pair["kappa"] == pytest.approx(0.31 / 0.61, abs=1e-4)
    assert pair["table"]["counts"] == [[4, 0, 1], [0, 1, 1], [1, 0, 2]]  # rows A: win, tie, loss


def test_fleiss_kappa_of_three_judges_by_hand():
    a, b, c = "W W L L".split(), "W T L W".split(), "W W T L".split()
    got = panel.agreement({"A": reviews_of(a), "B": reviews_of(b), "C": reviews_of(c)})
    # per item (W, T, L) counts: (3,0,0) (2,1,0) (0,1,2) (1,0,2): P = (1 + 1/3 + 1/3 + 1/3) / 4 = 1/2;
    # p = (6/12, 2/12, 4/12), P_e = 1/4 + 1/36 + 1/9 = 7/18; kappa = (1/2 - 7/18) / (11/18) = 2/11
    assert got["items_all_judges"] == 4 and got["fleiss_kappa"] == pytest.approx(2 / 11, abs=1e-4)
    ab = got["pairs"][0]  # A vs B: 2 of 4 equal; p_e = (2*2 + 0*1 + 2*1) / 16; kappa = (0.5 - 0.375) / 0.625
    assert ab["judges"] == ["A", "B"] and ab["agreement"] == 0.5 and ab["kappa"] == pytest.approx(0.2, abs=1e-4)


def test_kappa_is_undefined_when_both_judges_always_chose_the_same_outcome():
    got = panel.agreement({"A": reviews_of("W W W".split()), "B": reviews_of("W W W".split())})
    assert got["pairs"][0]["agreement"] == 1.0 and got["pairs"][0]["kappa"] is None


def test_self_preference_flags_same_model_and_same_family():
    flags = families.flags(["openai:gpt-4o", "local:smollm2-135m-instruct", "openai:claude-3-5-sonnet"],
                           ["alpaca-13b:v1", "student-en", "gpt-4-0613"], "gpt-4o",
                           families.parse_overrides(["student-*=smollm"]))
    got = {(f["judge"], f["model"]): f["reason"] for f in flags}
    assert got == {("openai:gpt-4o", "gpt-4-0613"): "same family openai-gpt",
                   ("openai:gpt-4o", "gpt-4o"): "same model gpt-4o",
                   ("local:smollm2-135m-instruct", "student-en"): "same family smollm"}
    assert families.family("local:runs/llama-3-8b-sft") == "llama" and families.family("vicuna-13b:v1.3") == "llama"
    with pytest.raises(UserError, match="give PATTERN=FAMILY"):
        families.parse_overrides(["student"])


def fp(judge="openai:gpt-4", returned="gpt-4-0613", system="fp_1", temperature=0.2):
    return judge_fingerprint.make(judge, returned, system, "abc", {"temperature": temperature, "max_tokens": 1024})


def test_mixed_fingerprints_are_refused_naming_what_differs_and_how_many():
    verdicts = [(fp(), f"a.jsonl:{i}") for i in range(1, 4)] + [(fp(returned="gpt-4-0314", system="fp_2"), "b.jsonl:1")]
    with pytest.raises(UserError) as e:
        judge_fingerprint.check(verdicts, allow_mixed=False)
    msg = str(e.value)
    assert "model_returned differs (gpt-4-0613: 3 verdicts, first a.jsonl:1, gpt-4-0314: 1 verdicts, first b.jsonl:1)" in msg
    assert "system_fingerprint differs" in msg and "--allow-mixed-judges" in msg
    assert "judge differs" not in msg and "params differs" not in msg
    notes = judge_fingerprint.check(verdicts, allow_mixed=True)
    assert notes and notes[0].startswith("mixed judges (--allow-mixed-judges): model_returned differs")
    with pytest.raises(UserError, match=r"params differs \(\{.*0\.2.*: 1 verdicts.*0\.7.*: 1 verdicts"):
        judge_fingerprint.check([(fp(), "a:1"), (fp(temperature=0.7), "b:1")], allow_mixed=False)


def test_unknown_fingerprints_never_refuse():
    # a file written before fingerprints, and one whose journal entries predate the returned model id
    notes = judge_fingerprint.check([(None, "old.jsonl:1"), (fp(), "new.jsonl:1"), (fp(returned=None, system=None),
                                                                                     "new.jsonl:2")], False)
    assert notes == ["1 of 3 verdicts carry no judge fingerprint (written before gpt4llm recorded it, or another "
                     "tool's file): their judge version is unknown"]
    assert judge_fingerprint.check([(None, "x:1"), (None, "x:2")], False)[0].startswith("2 of 2 verdicts")
