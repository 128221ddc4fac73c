"""``eval leaderboard`` (issues 16, 22) on real judgments: AlpacaEval 2's published rows, FastChat's
2023 Vicuna answers, and judgments in every input format it reads. Which estimator each column is:
see ``gpt4llm.eval.leaderboard``'s docstring."""

import csv
import json
import math
import random

import numpy as np

import pytest
from support import DATA, read_jsonl, run_cli, write_jsonl
from support.openai_server import OpenAIServer

AE = DATA / "alpaca-eval-2"
VICUNA = DATA / "vicuna-eval-2023"
MODELS = ["FuseChat-Llama-3.2-1B-Instruct", "FuseChat-Qwen-2.5-7B-Instruct"]
RAW = ["win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate", "avg_length"]


def published() -> dict:
    with open(AE / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv") as f:
        return {r[""]: r for r in csv.DictReader(f)}


def board(out) -> dict:
    return {r["model"]: r for r in json.loads((out / "leaderboard.json").read_text())["rows"]}


@pytest.fixture(scope="module")
def alpaca_eval_board(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    r = run_cli("eval", "leaderboard", *[x for m in MODELS for x in ("-r", str(AE / f"annotations_{m}.json"))],
                "-o", str(out), "--bootstrap", "300")
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_raw_columns_equal_the_published_rows_and_both_lc_estimators_are_close(alpaca_eval_board):
    out, stdout = alpaca_eval_board
    rows, pub = board(out), published()
    for m in MODELS:
        for c in RAW:
            assert rows[m][c] == pytest.approx(float(pub[m][c]), rel=1e-12, abs=1e-12), (m, c)
        assert rows[m]["baseline"] == "gpt4_1106_preview" and rows[m]["n_missing"] == 0
    # AlpacaEval's estimator without the difficulty and gamed-baseline rows it downloads from the hub
    # (its length_controlled_minimal GLM): 26.03 and 63.41 against the published 25.27 and 63.58.
    # Its lc_standard_error (the spread of its per-instruction predictions) has nothing to spread.
    # The shared-slope rate: 26.62 and 63.36, with a real standard error (raw: 29.92 and 64.64).
    for m in MODELS:
        lc_pub, raw = float(pub[m]["length_controlled_winrate"]), rows[m]["win_rate"]
        assert abs(rows[m]["length_controlled_winrate"] - lc_pub) <= 0.8, m
        assert abs(rows[m]["lc_shared_slope_winrate"] - lc_pub) <= 1.5, m
        for c in ("length_controlled_winrate", "lc_shared_slope_winrate"):  # towards the published LC, not away
            assert abs(rows[m][c] - lc_pub) < abs(raw - lc_pub), (m, c)
        assert rows[m]["lc_standard_error"] is None and 1.0 < rows[m]["lc_shared_slope_se"] < 2.0
    assert "length_controlled_minimal" in stdout
    # Bradley-Terry: the baseline anchored at 1000, intervals around the scores, the order of the win rates
    assert rows["gpt4_1106_preview"]["bt_score"] == 1000
    for m in MODELS:
        lo, hi = rows[m]["ci95"]
        assert lo < rows[m]["bt_score"] < hi
    assert rows[MODELS[1]]["bt_score"] > 1000 > rows[MODELS[0]]["bt_score"]
    assert list(rows)[0] == MODELS[1]  # sorted by LC
    with open(out / "leaderboard.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == list(rows)
    assert (out / "leaderboard.png").stat().st_size > 10_000 and "length slope" in stdout


def test_style_control_on_alpaca_eval_2(alpaca_eval_board):
    """Style control (issue 21) on GPT-4-turbo's real annotations: both models write longer answers than
    the baseline (2259 and 2173 characters against its 1900s) and GPT-4-turbo prefers length (AlpacaEval's
    own length-controlled paper), so the fitted length coefficient is positive and each model's
    style-controlled score sits below its raw one (with 1000 bootstrap rounds: 790 against 852 and 1045
    against 1105; the fit itself is checked against statsmodels in tests/unit/test_style_control.py)."""
    out, stdout = alpaca_eval_board
    doc = json.loads((out / "leaderboard.json").read_text())
    rows = {r["model"]: r for r in doc["rows"]}
    base_len = np.mean([len(x["output_1"]) for x in json.loads((AE / f"annotations_{MODELS[0]}.json").read_text())])
    length = doc["style"]["coefficients"]["length"]
    assert doc["style"]["games"] == 1610 and doc["style"]["separated"] is None
    assert 0 < length["ci95"][0] < length["coef"] < length["ci95"][1]
    assert set(doc["style"]["coefficients"]) == {"length", "headers", "bold", "lists"}
    for m in MODELS:
        assert rows[m]["avg_length"] > base_len
        lo, hi = rows[m]["style_ci95"]
        assert lo < rows[m]["style_bt_score"] < hi and rows[m]["style_bt_score"] < rows[m]["bt_score"]
    assert rows["gpt4_1106_preview"]["style_bt_score"] == 1000 and doc["reliability"] is None
    assert "style control (1610 judgments" in stdout and "BT(sc)" in stdout
    html = report_section({**doc, "figures": []})
    assert html.count('class="n style-bt"') == 3 and "The judge's taste for style, from 1610 judgments" in html


def test_a_model_alone_is_also_sane_and_nulls_are_counted_apart(tmp_path):
    rows = json.loads((AE / f"annotations_{MODELS[0]}.json").read_text())
    for i in range(0, 50):
        rows[i]["preference"] = None
    f = tmp_path / "ae.json"
    f.write_text(json.dumps(rows))
    r = run_cli("eval", "leaderboard", "-r", str(f), "-o", str(tmp_path / "out"), "--sort", "raw", "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    row = board(tmp_path / "out")[MODELS[0]]
    assert row["n_total"] == 755 and row["n_missing"] == 50 and "50 judgments without a preference" in row["note"]
    assert abs(row["length_controlled_winrate"] - float(published()[MODELS[0]]["length_controlled_winrate"])) <= 2.0


def test_alpaca_eval_rate_is_each_models_own_and_a_judge_that_ties_everything_gives_50(alpaca_eval_board, tmp_path):
    """AlpacaEval's estimator fits each model alone: a model's figure is the same with or without the
    other models on the board (the shared-slope one may move). A judge that ties everything shows no
    preference at all: 50 in both length-controlled columns (the old shared-slope prior gave 52.5)."""
    out, _ = alpaca_eval_board
    r = run_cli("eval", "leaderboard", "-r", str(AE / f"annotations_{MODELS[0]}.json"), "-o", str(tmp_path / "alone"),
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    alone, together = board(tmp_path / "alone")[MODELS[0]], board(out)[MODELS[0]]
    assert alone["length_controlled_winrate"] == together["length_controlled_winrate"]
    files = []
    for m in MODELS:
        rows = json.loads((AE / f"annotations_{m}.json").read_text())
        files.append(tmp_path / f"ties_{m}.json")
        files[-1].write_text(json.dumps([dict(x, preference=1.5) for x in rows]))
    r = run_cli("eval", "leaderboard", *[x for f in files for x in ("-r", str(f))], "-o", str(tmp_path / "ties"),
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    for m, row in board(tmp_path / "ties").items():
        assert row["length_controlled_winrate"] == pytest.approx(50.0, abs=1e-9), m
        assert row["lc_shared_slope_winrate"] == pytest.approx(50.0, abs=1e-9), m
        assert row["bt_score"] == pytest.approx(1000.0, abs=1e-6), m


def test_alpaca_eval_instruction_difficulty_file_gives_its_glm_with_difficulty(tmp_path):
    """With AlpacaEval's instruction_difficulty.csv (here one written for simulated annotations whose
    preferences follow AlpacaEval's GLM with known weights), length_controlled_winrate and
    lc_standard_error are the generating model's: the mean and the sem of sigmoid(w_diff * d + w_0)."""
    rng = np.random.default_rng(3)
    n = 805
    d = rng.normal(0, 1, n)
    lb, lm = rng.integers(300, 2500, n), rng.integers(300, 4000, n)
    delta = (lb - lm).astype(float)
    p = 1 / (1 + np.exp(-(-1.6 * np.tanh(delta / np.std(delta, ddof=1)) + 0.9 * d - 0.7)))
    truth = 1 / (1 + np.exp(-(0.9 * d - 0.7)))
    rows = [{"instruction": f"instruction {i}", "output_1": "b" * int(lb[i]), "generator_1": "base",
             "output_2": "m" * int(lm[i]), "generator_2": "sim", "preference": 1.0 + float(p[i])} for i in range(n)]
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps(rows))
    diff = tmp_path / "instruction_difficulty.csv"
    diff.write_text("index,instruction_difficulty\n" + "".join(f"{i},{float(d[i])!r}\n" for i in range(n)))
    r = run_cli("eval", "leaderboard", "-r", str(ann), "--instruction-difficulty", str(diff), "-o", str(tmp_path / "o"),
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    row = board(tmp_path / "o")["sim"]
    assert row["length_controlled_winrate"] == pytest.approx(100 * truth.mean(), abs=0.01)
    assert row["lc_standard_error"] == pytest.approx(100 * truth.std(ddof=1) / math.sqrt(n), rel=1e-3)
    assert "length_controlled_noreg" in r.stdout
    # a file of other instructions (here: the first 500) is not AlpacaEval's 805: not applied, and said so
    (tmp_path / "short.json").write_text(json.dumps(rows[:500]))
    r = run_cli("eval", "leaderboard", "-r", str(tmp_path / "short.json"), "--instruction-difficulty", str(diff),
                "-o", str(tmp_path / "s"), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    short = board(tmp_path / "s")["sim"]
    assert short["lc_standard_error"] is None and "--instruction-difficulty not applied" in short["note"]
    # a difficulty file that is not one: one line, exit 2
    bad = tmp_path / "bad.csv"
    bad.write_text("index,instruction_difficulty\n0,hard\n")
    r = run_cli("eval", "leaderboard", "-r", str(ann), "--instruction-difficulty", str(bad), "-o", str(tmp_path / "b"))
    assert r.returncode == 2 and "bad.csv:2" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def vicuna_answers():
    return {m: read_jsonl(VICUNA / f"answer_{m}.jsonl") for m in ("gpt35", "vicuna-13b", "alpaca-13b", "bard")}


def score_by_length(a: str, b: str) -> list[float]:
    """A stand-in judge with a visible rule: the longer answer wins (8 vs 6), equal lengths tie."""
    return [8.0, 6.0] if len(a) > len(b) else [6.0, 8.0] if len(a) < len(b) else [7.0, 7.0]


def test_gpt4llm_reviews_with_answers_give_every_column(tmp_path):
    ans = vicuna_answers()
    ref = {a["question_id"]: a for a in ans["gpt35"]}
    files = []
    for m in ("vicuna-13b", "alpaca-13b"):
        reviews = []
        for a in ans[m]:
            b = ref[a["question_id"]]
            for order, (x, y) in (("model_first", (a, b)), ("reference_first", (b, a))):
                reviews.append({"review_id": f"{m}{a['question_id']}{order}", "question_id": a["question_id"],
                                "answer1_id": x["answer_id"], "answer2_id": y["answer_id"], "reviewer_id": "j",
                                "text": "", "score": score_by_length(x["text"], y["text"]) if a["question_id"] != 5
                                else [-1, -1], "meta": {"model_id": m, "reference_id": "gpt35", "order": order}})
        files.append(write_jsonl(tmp_path / f"{m}.jsonl", reviews))
    answer_files = [str(VICUNA / f"answer_{m}.jsonl") for m in ("vicuna-13b", "alpaca-13b", "gpt35")]
    out = tmp_path / "out"
    r = run_cli("eval", "leaderboard", *[x for f in files for x in ("-r", str(f))],
                *[x for f in answer_files for x in ("-a", f)], "-o", str(out), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    rows = board(out)
    for m in ("vicuna-13b", "alpaca-13b"):
        longer = sum(len(a["text"]) > len(ref[a["question_id"]]["text"]) for a in ans[m] if a["question_id"] != 5)
        assert rows[m]["n_wins"] == longer and rows[m]["n_total"] == 79 and rows[m]["n_missing"] == 1
        assert rows[m]["avg_length"] == int(sum(len(a["text"]) for a in ans[m]) / 80)
        assert rows[m]["length_controlled_winrate"] is not None and rows[m]["bt_score"] is not None
    # a judge that only rewards length: the shared-slope rate sits far closer to 50 than the raw one. (Not
    # AlpacaEval's per-model fit: a verdict that is a step in the length difference separates perfectly, the
    # slope is bounded only by its L1 penalty, and the intercept lands where the imbalance puts it: 87.6 for
    # vicuna-13b, raw 73.4. sklearn's liblinear stops early there, at 83.6, with a worse objective.)
    for m in ("vicuna-13b", "alpaca-13b"):
        assert abs(rows[m]["lc_shared_slope_winrate"] - 50) < abs(rows[m]["win_rate"] - 50)
    # and style control has no estimate for such a judge (the length covariate predicts every verdict): empty, said
    assert all(rows[m]["style_bt_score"] is None for m in rows)
    assert "the length covariate(s) predict every verdict" in r.stdout

    # without the answer files: raw and Bradley-Terry columns, the length columns empty and said why
    out2 = tmp_path / "out2"
    r = run_cli("eval", "leaderboard", *[x for f in files for x in ("-r", str(f))], "-o", str(out2), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    rows2 = board(out2)
    assert rows2["vicuna-13b"]["win_rate"] == rows["vicuna-13b"]["win_rate"]
    assert rows2["vicuna-13b"]["length_controlled_winrate"] is None and rows2["vicuna-13b"]["avg_length"] is None
    assert rows2["vicuna-13b"]["lc_shared_slope_winrate"] is None
    assert "--answers" in rows2["vicuna-13b"]["note"] and "--answers" in r.stdout


def test_fastchat_reviews_and_pairwise_judgments(tmp_path):
    ans = vicuna_answers()
    ref = {a["question_id"]: a for a in ans["gpt35"]}
    # FastChat's 2023 reviews: answer ids only; Assistant 1 = gpt35 (the baseline), Assistant 2 = bard
    reviews = [{"review_id": str(i), "question_id": a["question_id"], "answer1_id": ref[a["question_id"]]["answer_id"],
                "answer2_id": a["answer_id"], "reviewer_id": "gpt-4-0328-default", "metadata": {},
                "text": "", "score": score_by_length(ref[a["question_id"]]["text"], a["text"])}
               for i, a in enumerate(ans["bard"])]
    f = write_jsonl(tmp_path / "review_gpt35_bard.jsonl", reviews)
    r = run_cli("eval", "leaderboard", "-r", str(f), "-a", str(VICUNA / "answer_bard.jsonl"), "-a",
                str(VICUNA / "answer_gpt35.jsonl"), "-o", str(tmp_path / "a"), "--baseline", "gpt-3.5-turbo:20230327",
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    row = board(tmp_path / "a")["bard:20230327"]
    assert row["n_total"] == 80 and row["n_wins"] == sum(len(a["text"]) > len(ref[a["question_id"]]["text"])
                                                        for a in ans["bard"])
    # without answers, the models come from FastChat's file name, and the length columns are empty
    r = run_cli("eval", "leaderboard", "-r", str(f), "-o", str(tmp_path / "b"), "--baseline", "gpt35", "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    assert board(tmp_path / "b")["bard"]["avg_length"] is None

    # FastChat llm_judge pairwise judgments among three models and a baseline: Bradley-Terry over all games
    rng = random.Random(0)
    strength = {"base": 0.0, "m1": 1.0, "m2": -0.5, "m3": 0.3}
    rows = []
    for q in range(80):
        for a, b in (("m1", "base"), ("m2", "base"), ("m3", "base"), ("m1", "m2"), ("m2", "m3")):
            def game():
                p = 1 / (1 + 10 ** (-(strength[a] - strength[b])))
                return "model_1" if rng.random() < p else "model_2"
            rows.append({"question_id": q, "model_1": a, "model_2": b, "g1_winner": game(), "g2_winner": game(),
                         "judge": ["gpt-4", "pair-v2"], "turn": 1})
    rows[0]["g1_winner"] = rows[0]["g2_winner"] = "error"
    f = write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    r = run_cli("eval", "leaderboard", "-r", str(f), "-o", str(tmp_path / "c"), "--baseline", "base", "--sort", "bt",
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    b = board(tmp_path / "c")
    assert [m for m in b] == ["m1", "m3", "base", "m2"]
    assert b["m1"]["n_missing"] == 1 and b["m1"]["n_total"] == 79
    assert all(b[m]["ci95"][0] < b[m]["bt_score"] < b[m]["ci95"][1] for m in ("m1", "m2", "m3"))


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    good = json.loads((AE / f"annotations_{MODELS[0]}.json").read_text())[:20]
    cases = {}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(x) + "\n" for x in good[:3]) + '{"instruction": \n')
    cases["malformed"] = ([str(bad)], "bad.jsonl:4")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps(x) + "\n" for x in good[:3]) +
                     json.dumps(dict(good[3], preference="two")) + "\n")
    cases["preference"] = ([str(wrong)], "wrong.jsonl:4")
    other = tmp_path / "other.json"
    other.write_text(json.dumps([dict(x, generator_1="gpt-3.5", generator_2="m2") for x in good]))
    cases["baselines"] = ([str(AE / f"annotations_{MODELS[0]}.json"), str(other)], "--baseline")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([dict(x, preference=None) for x in good]))
    cases["empty row"] = ([str(empty)], MODELS[0])
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"a": 1}\n')
    cases["unknown"] = ([str(unknown)], "unknown.jsonl:1")
    for name, (files, needle) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        r = run_cli("eval", "leaderboard", *[x for f in files for x in ("-r", f)], "-o", str(out))
        assert r.returncode == 2, (name, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, name
        assert not (out / "leaderboard.json").exists()
    # --baseline picks one when they differ: the other file's models are then not in the table
    r = run_cli("eval", "leaderboard", "-r", str(AE / f"annotations_{MODELS[0]}.json"), "-r", str(other),
                "-o", str(tmp_path / "picked"), "--baseline", "gpt4_1106_preview", "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    assert board(tmp_path / "picked")[MODELS[0]]["n_total"] == 805


# ---------------------------------------------------------------- the null-model exploit test (issue 21)

NULL_TEXT = "I am a constant answer, the same for every question."


def rule_judge(rule):
    """A judge on loopback whose verdict follows a visible rule on the two answers it is shown."""
    def reply(body):
        c = body["messages"][-1]["content"]
        a1 = c.split("[The Start of Assistant 1's Answer]\n", 1)[1].split("\n\n[The End of Assistant 1's Answer]", 1)[0]
        a2 = c.split("[The Start of Assistant 2's Answer]\n", 1)[1].split("\n\n[The End of Assistant 2's Answer]", 1)[0]
        s1, s2 = rule(a1, a2)
        return f"{s1} {s2}\nThe scores follow the rule."
    return reply


def gullible(a1, a2):  # the constant answer always wins; otherwise the longer answer
    return (10, 3) if a1 == NULL_TEXT else (3, 10) if a2 == NULL_TEXT else tuple(score_by_length(a1, a2))


def sound(tied_question: str):
    def rule(a1, a2):  # the constant answer always loses, but ties on one question
        if NULL_TEXT in (a1, a2):
            if tied_question in (a1, a2):
                return (7, 7)
            return (3, 9) if a1 == NULL_TEXT else (9, 3)
        return tuple(score_by_length(a1, a2))
    return rule


def test_null_model_marks_a_judge_that_prefers_a_constant_answer(tmp_path):
    """eval judge --null-model judges a constant answer like any model; the leaderboard recognises it from
    its reviews and marks the setup unreliable when it wins more than 10%: a judge that prefers it gets
    100% (unreliable), a sound one that ties it once in 10 questions 5% (reliable; unreliable at 4%)."""
    qs = [json.loads(x) for x in (VICUNA / "question.jsonl").read_text().splitlines()][:10]
    qf = write_jsonl(tmp_path / "q.jsonl", qs)
    vic, ref = str(VICUNA / "answer_vicuna-13b.jsonl"), str(VICUNA / "answer_gpt35.jsonl")
    tied = next(a["text"] for a in read_jsonl(ref) if a["question_id"] == qs[0]["question_id"])
    runs = {}
    for name, rule in (("gullible", gullible), ("sound", sound(tied))):
        with OpenAIServer(api_key="k", reply=rule_judge(rule)) as srv:
            r = run_cli("eval", "judge", "-q", str(qf), "-a", vic, "-r", ref, "--judge", "openai:gpt-4", "--base-url",
                        srv.url, "--null-model", "--null-answer", NULL_TEXT, "-o", str(tmp_path / f"{name}.jsonl"),
                        env={"OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
        summary = json.loads((tmp_path / f"{name}.jsonl.summary.json").read_text())["models"]
        lb = run_cli("eval", "leaderboard", "-r", str(tmp_path / f"{name}.jsonl"), "-a", vic, "-a", ref,
                     "-o", str(tmp_path / f"lb_{name}"), "--bootstrap", "200")
        assert lb.returncode == 0, lb.stderr
        doc = json.loads((tmp_path / f"lb_{name}" / "leaderboard.json").read_text())
        runs[name] = (r.stdout, summary, doc, lb.stdout)
    stdout, summary, doc, text = runs["gullible"]
    rows = {x["model"]: x for x in doc["rows"]}
    null = rows["null-model"]
    assert null["null_model"] is True and null["win_rate"] == 100.0 and null["n_total"] == 10
    assert null["length_controlled_winrate"] is not None  # its length from its reviews, no answer file needed
    assert null["style_bt_score"] is None and "left out of the shared fits" in null["note"]
    reason = doc["reliability"]["reasons"][0]
    assert doc["reliability"]["unreliable"] and "gets win rate 100.0%" in reason and reason.endswith("> 10%")
    assert "UNRELIABLE JUDGE SETUP: the null model null-model" in text
    assert all(s["reliability"]["unreliable"] for s in summary.values()) and "UNRELIABLE JUDGE" in stdout
    assert summary["null-model"]["wins"] == 10
    reviews = read_jsonl(tmp_path / "gullible.jsonl")
    assert sum(x["meta"].get("null_model", False) for x in reviews) == 20  # 10 questions x 2 orders, marked

    stdout, summary, doc, text = runs["sound"]
    null = {x["model"]: x for x in doc["rows"]}["null-model"]
    assert null["win_rate"] == pytest.approx(5.0) and null["n_draws"] == 1  # one tie in ten: 0.5 / 10
    assert not doc["reliability"]["unreliable"] and "null-model exploit test passed" in text
    assert not any(s["reliability"]["unreliable"] for s in summary.values())
    lb = run_cli("eval", "leaderboard", "-r", str(tmp_path / "sound.jsonl"), "-a", vic, "-a", ref, "-o",
                 str(tmp_path / "lb4"), "--null-model-threshold", "4", "--bootstrap", "200")
    assert lb.returncode == 0 and "UNRELIABLE JUDGE SETUP" in lb.stdout and "gets win rate 5.0%" in lb.stdout

    # the probe moves no other figure: the board without the null model's reviews is the same for vicuna-13b
    without = write_jsonl(tmp_path / "without.jsonl", [x for x in read_jsonl(tmp_path / "sound.jsonl")
                                                       if not x["meta"].get("null_model")])
    lb = run_cli("eval", "leaderboard", "-r", str(without), "-a", vic, "-a", ref, "-o", str(tmp_path / "lbw"),
                 "--bootstrap", "200")
    assert lb.returncode == 0, lb.stderr
    alone = board(tmp_path / "lbw")["vicuna-13b:20230322-clean-lang"]
    with_null = {x["model"]: x for x in doc["rows"]}["vicuna-13b:20230322-clean-lang"]
    for k in ("lc_shared_slope_winrate", "bt_score", "length_controlled_winrate"):
        assert with_null[k] == pytest.approx(alone[k], abs=1e-9), k
    assert (with_null["style_bt_score"] is None) == (alone["style_bt_score"] is None)


def report_section(leaderboard: dict) -> str:
    """The study report's leaderboard section (templates/report.html.j2) rendered for one board."""
    from importlib import resources

    from jinja2 import Environment, select_autoescape

    from gpt4llm.pipeline import report

    text = resources.files("gpt4llm.pipeline").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    start, end = "{% if r.judge and r.judge.leaderboard %}", "{% if r.judge and r.judge.agreement %}"
    section = text[text.index(start):text.index(end)]
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["png"] = report._png
    return env.from_string(section).render(r={"judge": {"summaries": {}, "leaderboard": leaderboard}})


def test_null_model_named_on_the_command_line_and_bad_input(tmp_path):
    """--null-model NAME marks a model of any file (here AlpacaEval annotations, read as if that model
    answered the same text everywhere): its 29.9% raw rate is far above 10%. Naming a model no file has,
    the baseline, or a file whose only model is the baseline: one line, exit 2."""
    ae = AE / f"annotations_{MODELS[0]}.json"
    r = run_cli("eval", "leaderboard", "-r", str(ae), "--null-model", MODELS[0], "-o", str(tmp_path / "n"),
                "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "n" / "leaderboard.json").read_text())
    assert doc["reliability"]["unreliable"] and board(tmp_path / "n")[MODELS[0]]["null_model"] is True
    assert "gets win rate 29.9%" in doc["reliability"]["reasons"][0]
    html = report_section({**doc, "figures": []})
    assert 'class="warn judge-unreliable null-model-test">Unreliable judge setup: the null model' in html
    assert "(null model: the same answer to every question)" in html and 'class="n style-bt"' in html
    good = json.loads(ae.read_text())[:20]
    self_only = tmp_path / "self.json"
    self_only.write_text(json.dumps([dict(x, generator_2=x["generator_1"]) for x in good]))
    cases = [(["-r", str(ae), "--null-model", "nobody"], "--null-model nobody: no judgment involves this model"),
             (["-r", str(ae), "--null-model", "gpt4_1106_preview"], "is the baseline"),
             (["-r", str(self_only)], "every judgment compares gpt4_1106_preview with itself"),
             (["-r", str(ae), "--null-model-threshold", "150"], "--null-model-threshold")]
    for k, (args, needle) in enumerate(cases):
        r = run_cli("eval", "leaderboard", *args, "-o", str(tmp_path / f"bad{k}"))
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / f"bad{k}" / "leaderboard.json").exists()
