"""``eval judge`` with a panel of judges, and the judge fingerprint, end to end against the loopback
OpenAI-compatible server (each "judge" is a model name it answers for, with verdicts written here):
per-judge reviews, the judges' agreement and the panel's verdict as computed by hand, a judge added
later paid for alone, the self-preference flag, the fingerprint the server returned in every review,
the leaderboard's refusal to mix two judge versions, and bad input in one line."""

import json
import re

from support import read_jsonl, run_cli, write_jsonl

# Which answer each judge prefers, per question, from the evaluated model's side (W: the student, L: the
# reference, T: a tie), whatever the order: no judge flips.
PREFERS = {"gpt-4o": "LLLL", "judge-b": "WWLL", "judge-c": "WTLW"}
REFUSAL = "I'm sorry, but I can't help with rating these answers."


def reply(body):
    user = body["messages"][1]["content"]
    q = int(re.search(r"Question (\d+):", user).group(1))
    if body["model"] == "refuser":
        return REFUSAL
    want = PREFERS[body["model"]][q - 1]
    student_first = user.index("Student answer") < user.index("Reference answer")
    if want == "T":
        return "7 7\nBoth answers are equally good."
    first_wins = (want == "W") == student_first
    return ("9 4" if first_wins else "4 9") + "\nOne answer is better."


def files(tmp_path, model="student"):
    qs = [{"question_id": i, "text": f"Question {i}: explain topic {i}.", "category": "generic"} for i in range(1, 5)]
    student = [{"question_id": i, "answer_id": f"{model}{i}", "model_id": model, "text": f"Student answer {i}."}
               for i in range(1, 5)]
    ref = [{"question_id": i, "answer_id": f"r{i}", "model_id": "gpt-4-0613", "text": f"Reference answer {i}."}
           for i in range(1, 5)]
    return (write_jsonl(tmp_path / "q.jsonl", qs), write_jsonl(tmp_path / f"{model}.jsonl", student),
            write_jsonl(tmp_path / "ref.jsonl", ref))


def judge_args(tmp_path, out, *judges, model="student"):
    q, a, r = files(tmp_path, model)
    return ("eval", "judge", "--questions", str(q), "--answers", str(a), "--reference", str(r), "-o", str(out),
            "--quiet", *[x for j in judges for x in ("--judge", f"openai:{j}")])


def test_a_panel_reports_each_judge_their_agreement_and_its_verdict(tmp_path, openai_server, openai_env):
    openai_server.reply = reply
    openai_server.served_as = {"gpt-4o": "gpt-4o-2024-08-06"}
    openai_server.system_fingerprint = "fp_test1"
    out = tmp_path / "reviews.jsonl"
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b"), env=openai_env)
    assert r.returncode == 0, r.stderr
    assert len(openai_server.requests) == 16  # 4 questions x 2 orders x 2 judges
    # each judge's reviews on their own, with the fingerprint the server returned
    own = read_jsonl(tmp_path / "reviews_openai-gpt-4o.jsonl")
    assert len(own) == 8 and len(read_jsonl(tmp_path / "reviews_openai-judge-b.jsonl")) == 8
    fp = own[0]["meta"]["judge_fingerprint"]
    assert (fp["judge"], fp["model_returned"], fp["system_fingerprint"]) == ("openai:gpt-4o", "gpt-4o-2024-08-06", "fp_test1")
    assert fp["params"] == {"max_tokens": 1024, "score_mode": "text", "temperature": 0.2, "top_p": 1.0}  # Vicuna's reviewer
    assert re.fullmatch(r"[0-9a-f]{64}", fp["prompt_template_sha256"])
    assert read_jsonl(tmp_path / "reviews_openai-judge-b.jsonl")[0]["meta"]["judge_fingerprint"]["model_returned"] == "judge-b"
    # two judges: L/W on questions 1 and 2 (no majority: ties), L/L on 3 and 4
    panel = {(x["question_id"], x["meta"]["order"]): x for x in read_jsonl(out)}
    assert [panel[(q, "model_first")]["score"] for q in (1, 2, 3, 4)] == [[6.5, 6.5], [6.5, 6.5], [4, 9], [4, 9]]
    s = json.loads((tmp_path / "reviews.jsonl.summary.json").read_text())
    assert (s["models"]["student"]["wins"], s["models"]["student"]["ties"], s["models"]["student"]["losses"]) == (0, 2, 2)
    # agreement 4 of 8 items; gpt-4o always says L, so p_e = 8 * 4 / 64 = 0.5 = p_o: kappa 0
    pair = s["panel"]["agreement"]["pairs"][0]
    assert (pair["items"], pair["agreement"], pair["kappa"]) == (8, 0.5, 0.0)
    # the judge of the reference's own family is flagged, with the reference's win rate by each judge
    flag = s["self_preference"][0]
    assert (flag["judge"], flag["model"], flag["role"], flag["reason"]) == ("openai:gpt-4o", "gpt-4-0613", "reference",
                                                                            "same family openai-gpt")
    assert flag["win_rate_by_judge"] == {"openai:gpt-4o": 100.0, "openai:judge-b": 50.0, "panel (majority)": 75.0}
    assert "SELF-PREFERENCE RISK: judge openai:gpt-4o and reference gpt-4-0613" in r.stdout
    assert "openai:gpt-4o vs openai:judge-b: 50.0% agree, Cohen's kappa 0.000 over 8 items" in r.stdout

    # a third judge added: only its calls are made
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b", "judge-c"), env=openai_env)
    assert r.returncode == 0, r.stderr
    new = openai_server.requests[16:]
    assert len(new) == 8 and {x["body"]["model"] for x in new} == {"judge-c"}
    # majority of three: q1 L W W -> W; q2 L W T -> tie; q3 L L L -> L; q4 L L W -> L
    panel = {(x["question_id"], x["meta"]["order"]): x for x in read_jsonl(out)}
    # (the tie's scores: the mean of every score given, (4 + 9 + 9 + 4 + 7 + 7) / 6, to 4 places)
    assert [panel[(q, "model_first")]["score"] for q in (1, 2, 3, 4)] == [[9, 4], [6.6667, 6.6667], [4, 9], [4, 9]]
    s = json.loads((tmp_path / "reviews.jsonl.summary.json").read_text())
    pairs = {tuple(p["judges"]): p for p in s["panel"]["agreement"]["pairs"]}
    # judge-b vs judge-c: W/W, W/T, L/L, L/W -> 4 of 8; p_e = (4*4 + 4*2) / 64 = 0.375; kappa (0.5 - 0.375) / 0.625
    assert pairs[("openai:judge-b", "openai:judge-c")]["agreement"] == 0.5
    assert pairs[("openai:judge-b", "openai:judge-c")]["kappa"] == 0.2
    assert s["self_preference"][0]["win_rate_by_judge"]["openai:judge-c"] == 37.5  # (1 win + 1 tie / 2) / 4

    # --panel-verdict mean: no call at all, the mean of the three judges' scores
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b", "judge-c"), "--panel-verdict", "mean", env=openai_env)
    assert r.returncode == 0 and len(openai_server.requests) == 24
    q1 = next(x for x in read_jsonl(out) if x["question_id"] == 1 and x["meta"]["order"] == "model_first")
    assert q1["score"] == [round((4 + 9 + 9) / 3, 4), round((9 + 4 + 4) / 3, 4)]


def test_the_leaderboard_refuses_two_versions_of_a_judge(tmp_path, openai_server, openai_env):
    openai_server.reply = reply
    openai_server.served_as = {"gpt-4o": "gpt-4o-2024-05-13"}
    openai_server.system_fingerprint = "fp_may"
    a = tmp_path / "a.jsonl"
    assert run_cli(*judge_args(tmp_path, a, "gpt-4o", model="alpaca"), env=openai_env).returncode == 0
    openai_server.served_as = {"gpt-4o": "gpt-4o-2024-08-06"}  # the same name, a new model behind it
    openai_server.system_fingerprint = "fp_aug"
    b = tmp_path / "b.jsonl"
    assert run_cli(*judge_args(tmp_path, b, "gpt-4o", model="vicuna"), env=openai_env).returncode == 0
    board = ("eval", "leaderboard", "--reviews", str(a), "--reviews", str(b), "--output-dir", str(tmp_path / "lb"))
    r = run_cli(*board)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "model_returned differs (gpt-4o-2024-05-13: 8 verdicts, first " in r.stderr
    assert "gpt-4o-2024-08-06: 8 verdicts" in r.stderr and "system_fingerprint differs (fp_may: 8 verdicts" in r.stderr
    assert "judge differs" not in r.stderr and not (tmp_path / "lb" / "leaderboard.json").exists()
    r = run_cli(*board, "--allow-mixed-judges")
    assert r.returncode == 0, r.stderr
    assert "mixed judges (--allow-mixed-judges): model_returned differs" in r.stdout
    assert "self-preference risk: judge openai:gpt-4o and reference gpt-4-0613 (same family openai-gpt)" in r.stdout
    # files written before fingerprints: unknown, not refused
    for f in (a, b):
        write_jsonl(f, [{**x, "meta": {k: v for k, v in x["meta"].items() if k != "judge_fingerprint"}}
                        for x in read_jsonl(f)])
    r = run_cli(*board)
    assert r.returncode == 0, r.stderr
    assert "16 of 16 verdicts carry no judge fingerprint" in r.stdout


def test_a_judge_that_refuses_everything_and_one_model_only_are_one_line(tmp_path, openai_server, openai_env):
    openai_server.reply = reply
    out = tmp_path / "reviews.jsonl"
    r = run_cli(*judge_args(tmp_path, out, "refuser"), "--max-reasks", "0", env=openai_env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "judge openai:refuser gave no readable verdict in any of its 4 questions (first reply: " \
           f"{REFUSAL!r})" in r.stderr and "pick another judge" in r.stderr
    # in a panel: named, the panel's verdict not written, the other judge's calls journaled
    panel_out = tmp_path / "panel.jsonl"
    r = run_cli(*judge_args(tmp_path, panel_out, "gpt-4o", "refuser"), "--max-reasks", "0", env=openai_env)
    assert r.returncode == 2 and "judge openai:refuser gave no readable verdict" in r.stderr
    assert "leave it out of the panel" in r.stderr and not panel_out.exists()
    sent = len(openai_server.requests)
    r = run_cli(*judge_args(tmp_path, panel_out, "gpt-4o"), env=openai_env)  # without it: paid already
    assert r.returncode == 0 and len(openai_server.requests) == sent
    # the only model is the reference itself
    q, _, ref = files(tmp_path)
    r = run_cli("eval", "judge", "--questions", str(q), "--answers", str(ref), "--reference", str(ref),
                "--judge", "openai:gpt-4o", "-o", str(tmp_path / "self.jsonl"), env=openai_env)
    assert r.returncode == 2 and "the only model is the reference itself (gpt-4-0613" in r.stderr
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "gpt-4o"), env=openai_env)
    assert r.returncode == 2 and "a judge is given twice: openai:gpt-4o" in r.stderr


def test_compare_with_a_panel_averages_the_judges_scores(tmp_path, openai_server, openai_env):
    """compare --judge A --judge B: each judge's comparison file, the mean score per response, the
    judges' agreement on scores and on the order of two responses, a judge added later paid alone."""
    # the score each judge gives (question i, source): judge-x likes A, judge-y likes B, judge-z is flat
    given = {"judge-x": {"A": [9, 8, 7], "B": [5, 6, 7]}, "judge-y": {"A": [4, 6, 8], "B": [8, 6, 4]},
             "judge-z": {"A": [6, 6, 6], "B": [6, 6, 6]}}

    def rate(body):
        text = body["messages"][0]["content"]
        i = int(re.search(r"question (\d+)\?", text).group(1))
        src = "A" if f"answer A{i}" in text else "B"
        return f"{given[body['model']][src][i]}\nRated."

    openai_server.reply = rate
    openai_server.served_as = {"judge-x": "judge-x-0613"}
    q = write_jsonl(tmp_path / "q.jsonl", [{"question_id": i, "text": f"question {i}?"} for i in range(3)])
    a, b = (write_jsonl(tmp_path / f"{m}.jsonl", [{"question_id": i, "answer_id": f"{m}{i}", "model_id": m,
                                                   "text": f"answer {m}{i}"} for i in range(3)]) for m in "AB")
    out = tmp_path / "c.jsonl"
    args = ("compare", "-i", str(q), "-r", str(a), "-r", str(b), "-o", str(out), "-q")
    r = run_cli(*args, "--judge", "openai:judge-x", "--judge", "openai:judge-y", env=openai_env)
    assert r.returncode == 0, r.stderr
    assert len(openai_server.requests) == 12
    x = read_jsonl(tmp_path / "c_openai-judge-x.jsonl")
    assert [[s["score"] for s in rec["responses_and_scores"]] for rec in x] == [[9, 5], [8, 6], [7, 7]]
    assert x[0]["meta"]["judge_fingerprint"]["model_returned"] == "judge-x-0613"
    rows = read_jsonl(out)
    assert [[s["score"] for s in rec["responses_and_scores"]] for rec in rows] == [[6.5, 6.5], [7, 6], [7.5, 5.5]]
    assert rows[0]["meta"]["panel_scores"] == {"A": {"openai:judge-x": 9, "openai:judge-y": 4},
                                               "B": {"openai:judge-x": 5, "openai:judge-y": 8}}
    pair = json.loads((tmp_path / "c.jsonl.report.json").read_text())["panel"]["agreement"]["pairs"][0]
    # scores A0..2, B0..2: x (9 8 7 5 6 7), y (4 6 8 8 6 4): ranks x (6 5 3.5 1 2 3.5), y (1.5 3.5 5.5 5.5 3.5 1.5),
    # about their mean 3.5: x (2.5 1.5 0 -2.5 -1.5 0), y (-2 0 2 2 0 -2); Spearman = Pearson of the ranks =
    # -10 / sqrt(17 * 16) = -0.6063; |differences| 5 2 1 3 0 3 -> 14 / 6
    assert pair["spearman"] == round(-10 / (17 * 16) ** 0.5, 4) and pair["mean_abs_diff"] == round(14 / 6, 4)
    # orders of A vs B: x (first, first, tie), y (second, tie, first): none equal -> 0; kappa:
    # p_o = 0, x (2 first, 1 tie), y (1 first, 1 tie, 1 second): p_e = (2 * 1 + 1 * 1) / 9 = 1/3, (0 - 1/3) / (2/3)
    assert (pair["response_pairs"], pair["order_agreement"], pair["order_kappa"]) == (3, 0.0, -0.5)
    r = run_cli(*args, "--judge", "openai:judge-x", "--judge", "openai:judge-y", "--judge", "openai:judge-z",
                env=openai_env)
    assert r.returncode == 0, r.stderr
    assert {x["body"]["model"] for x in openai_server.requests[12:]} == {"judge-z"} and len(openai_server.requests) == 18
    assert [s["score"] for s in read_jsonl(out)[0]["responses_and_scores"]] == [round(19 / 3, 4), round(19 / 3, 4)]
    assert "agreement between judges" in r.stdout and "panel (mean of 3 judges' scores)" in r.stdout


def test_the_report_shows_the_panel_the_kappas_the_flags_and_escapes_names(tmp_path, openai_server, openai_env):
    """report.html of a study whose judge stage was a panel: the per-judge table, the kappa matrix,
    the self-preference warning and the fingerprints, with a model id holding markup escaped."""
    from gpt4llm.pipeline import report
    from gpt4llm.pipeline.config import Pipeline
    from gpt4llm.pipeline.study import Study

    openai_server.reply = reply
    out = tmp_path / "reviews.jsonl"
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b", model="<b>student</b>"), env=openai_env)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "reviews.jsonl.summary.json").read_text())
    study = Study.of(Pipeline.model_validate({"name": "t", "models": {"judge": ["openai:gpt-4o", "openai:judge-b"]}}),
                     tmp_path / "p.yaml", tmp_path / "study")
    study.results["judge"] = {"summaries": s["models"], "figures": [], "mode": "pairwise", "panel": s["panel"],
                              "self_preference": s["self_preference"]}
    report.build(study, total_seconds=1.0)
    html = (tmp_path / "study" / "report.html").read_text()
    panel = html[html.index('id="judge-panel"'):html.index("</section>", html.index('id="judge-panel"'))]
    assert "&lt;b&gt;student&lt;/b&gt;" in panel and "<b>student</b>" not in html
    assert '<table class="kappa-matrix">' in panel and "50.0%, &kappa; 0.000 (8)" in panel
    assert panel.count("judge-fingerprint") == 2 and "judge openai:judge-b, model_returned judge-b" in panel
    assert "Self-preference risk: the judge openai:gpt-4o and the reference gpt-4-0613 are of the same family openai-gpt" in panel


def test_a_judge_whose_calls_fail_fails_the_panel_run_until_retried(tmp_path, openai_server, openai_env):
    """Judges run one after the other, so the second request of each prompt is judge-b's: those answer
    400. The panel's verdict is gpt-4o's alone, the run exits 1 listing judge-b's calls, and the
    next run retries them only."""
    from support.openai_server import Fault

    openai_server.reply = reply
    openai_server.fault = lambda content, attempt: Fault("status", 400) if attempt == 2 else None
    out = tmp_path / "reviews.jsonl"
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b"), env=openai_env)
    # (counted per question, as for one judge: 4 questions, each failed in both orders)
    assert r.returncode == 1 and "eval judge: 4 model calls failed (listed in" in r.stderr, r.stderr
    errors = read_jsonl(tmp_path / "reviews.jsonl.errors.jsonl")
    assert len(errors) == 8 and {e["judge"] for e in errors} == {"openai:judge-b"}
    assert [x["score"] for x in read_jsonl(out) if x["meta"]["order"] == "model_first"] == [[4, 9]] * 4  # gpt-4o's
    openai_server.fault = None
    sent = len(openai_server.requests)
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b"), env=openai_env)
    assert r.returncode == 0, r.stderr
    assert len(openai_server.requests) == sent + 8 and {x["body"]["model"] for x in openai_server.requests[sent:]} == {"judge-b"}
    assert not (tmp_path / "reviews.jsonl.errors.jsonl").exists()


def test_a_panel_runs_the_null_model_exploit_test_on_its_own_verdict(tmp_path, openai_server, openai_env):
    """eval judge --null-model with two judges: the panel's reviews of the constant answer carry the
    null-model mark (so the leaderboard recognises it), and a panel that lets it beat the reference is
    marked unreliable, as one judge is."""
    def gullible(body):  # both judges prefer whichever answer is not the reference's
        user = body["messages"][1]["content"]
        ref_first = user.index("Reference answer") < max(user.find("Thank you for your question"),
                                                          user.find("Student answer"))
        return ("4 9" if ref_first else "9 4") + "\nThe other answer is better."

    openai_server.reply = gullible
    out = tmp_path / "reviews.jsonl"
    r = run_cli(*judge_args(tmp_path, out, "gpt-4o", "judge-b"), "--null-model", env=openai_env)
    assert r.returncode == 0, r.stderr
    nulls = [x for x in read_jsonl(out) if x["meta"]["model_id"] == "null-model"]
    assert len(nulls) == 8 and all(x["meta"].get("null_model") is True for x in nulls)
    s = json.loads((tmp_path / "reviews.jsonl.summary.json").read_text())
    assert (s["models"]["null-model"]["wins"], s["models"]["null-model"]["losses"]) == (4, 0)  # per question
    rel = s["models"]["student"]["reliability"]
    assert rel["unreliable"] and any("null model" in x for x in rel["reasons"]), rel
    board = run_cli("eval", "leaderboard", "--reviews", str(out), "--output-dir", str(tmp_path / "lb"))
    assert board.returncode == 0, board.stderr
    rows = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["rows"]
    assert [x["null_model"] for x in rows if x["model"] == "null-model"] == [True]
