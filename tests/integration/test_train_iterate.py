"""``train iterate`` (issue 20) on tiny models, through the real CLI: a round of either method raises
the held-out reward; a run killed with -9 in the middle of a round's training, run again, ends with
the same weights and the same held-out answers as a run never killed, and asks the journal nothing
twice; the reward model's scores are ``rank``'s; the student is served by an engine each round;
bad settings are one line and exit 2.

The student: the session's 2-layer random Llama with its end-of-sequence logit raised by a fixed
offset (every token's embedding gets a constant first component and EOS a larger one), so its
answers end at random lengths (three in four within 12 tokens) as a trained student's do.
The reward: the documented rule ``rule:regex=\\S+``, the number of words, recomputed here with
``str.split``. It is the reward a student can hack by talking longer, which the held-out length
shows rising with it."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from support import read_jsonl, run_cli, write_jsonl

WORDS = ["apple", "river", "stone", "cloud", "tiger", "paper", "music", "green", "house", "light", "ocean", "train"]
INSTRUCTIONS = [{"instruction": f"Write about the {w}.", "input": f"case {i}"} for i, w in enumerate(WORDS * 2)]
RULE = "rule:regex=\\S+"


@pytest.fixture(scope="module")
def student(tiny_checkpoint, tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path_factory.mktemp("student")
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    with torch.no_grad():  # tied embeddings: the constant component adds the same to every logit but EOS's
        emb = model.get_input_embeddings().weight
        emb[:, 0] = 1.0
        emb[tok.eos_token_id, 0] = 2.5
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def instructions(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("instr") / "instructions.jsonl", INSTRUCTIONS)


def args(instructions, out, student, method, *extra, samples="8"):
    return ("train", "iterate", "-i", str(instructions), "-o", str(out), "-m", f"local:{student}", "--method", method,
            "--rounds", "1", "--samples", samples, "--heldout", "8", "--heldout-samples", "4", "--max-tokens", "24",
            "--temperature", "1.0", "--lr", "5e-3", "--epochs", "3", "--train-batch-size", "4", "--per-device-batch", "4",
            "--warmup-ratio", "0", "--save-steps", "1", "--logging-steps", "1", "-q", *extra)


@pytest.fixture(scope="module")
def whole(student, instructions, tmp_path_factory):
    """One uninterrupted run per method, made on first use."""
    done = {}

    def get(method: str, scorer=("--judge", RULE)):
        if method not in done:
            out = tmp_path_factory.mktemp(f"whole-{method}") / "run"
            r = run_cli(*args(instructions, out, student, method, *scorer))
            assert r.returncode == 0, r.stderr[-3000:]
            done[method] = (out, r)
        return done[method]

    return get


@pytest.mark.parametrize("method", ["rejection", "dpo"])
def test_a_round_raises_the_held_out_reward(method, whole):
    out, r = whole(method)
    run = json.loads((out / "iterate.json").read_text())
    assert run["status"] == "done" and [m["round"] for m in run["rounds"]] == [0, 1]
    r0, r1 = run["rounds"]
    # the held-out reward is the mean word count of 8 held-out instructions x 4 answers, by the rule
    for m in (r0, r1):
        held = read_jsonl(out / f"round_{m['round']}" / "heldout.jsonl")
        assert len(held) == 32 and all(h["reward"] == len(h["text"].split()) for h in held)
        assert m["reward"] == pytest.approx(sum(h["reward"] for h in held) / 32)
    noise = 2 * (r0["reward_se"] ** 2 + r1["reward_se"] ** 2) ** 0.5
    assert r1["reward"] - r0["reward"] > noise, (r0, r1)
    assert r1["length"] > r0["length"] and r1["kl"] > 0 and r0["kl"] == 0  # talking longer is how it got there
    assert run["best_round"] == 1 and run["final_model"] == str((out / "round_1" / "checkpoint").resolve())
    # the round's data: each prompt's best (dpo: and worst) answer by the rule; one cut at --max-tokens
    # is marked, to be trained without an end-of-sequence token
    samples, scores = read_jsonl(out / "round_1" / "samples.jsonl"), read_jsonl(out / "round_1" / "scores.jsonl")
    assert len(samples) == 16 * 8 and [s["reward"] for s in scores] == [len(x["text"].split()) for x in samples]
    words, cut = {}, {}
    for x in samples:
        words.setdefault(x["question_id"], []).append(len(x["text"].split()))
        cut[(x["question_id"], x["sample"])] = x["finish_reason"] == "length"
    if method == "rejection":
        targets = read_jsonl(out / "round_1" / "sft_targets.jsonl")
        assert targets and all(t["meta"]["reward"] == max(words[t["id"]]) for t in targets)
        assert all(t["meta"]["unfinished"] == cut[(t["id"], t["meta"]["sample"])] for t in targets)
    else:
        pairs = read_jsonl(out / "round_1" / "pairs.jsonl")
        assert pairs and all([x["score"] for x in p["responses_and_scores"]] == [max(words[p["id"]]), min(words[p["id"]])]
                             for p in pairs)
        assert all(p["meta"]["unfinished"] == [i for i, x in enumerate(p["responses_and_scores"])
                                               if cut[(p["id"], int(x["source"].removeprefix("sample-")))]]
                   for p in pairs)
    assert "best round 1" in r.stdout and (out / "iterate.png").is_file()


def test_each_rounds_win_rate_against_round_0_by_the_judge(student, instructions, whole):
    """--winrate-questions on a finished run: each round's student answers the questions and the judge
    compares it with round 0's in both orders (eval judge); the rounds are not trained again."""
    from support import DATA

    out, _ = whole("rejection")
    weights = (out / "round_1" / "checkpoint" / "model.safetensors").read_bytes()
    r = run_cli(*args(instructions, out, student, "rejection", "--judge", RULE), "--winrate-questions",
                str(DATA / "vicuna-eval-2023" / "question.jsonl"), "--winrate-limit", "2", "--winrate-judge",
                f"local:{student}", "--winrate-score-mode", "logprobs")
    assert r.returncode == 0, r.stderr[-3000:]
    reviews = read_jsonl(out / "winrate" / "reviews.jsonl")
    assert len(reviews) == 4 and {x["meta"]["order"] for x in reviews} == {"model_first", "reference_first"}
    assert {x["meta"]["model_id"] for x in reviews} == {"round-1"} and all(x["meta"]["reference_id"] == "round-0"
                                                                          for x in reviews)
    run = json.loads((out / "iterate.json").read_text())
    rate = run["rounds"][1]["win_rate"]
    assert rate is not None and 0 <= rate <= 100
    assert (out / "round_1" / "checkpoint" / "model.safetensors").read_bytes() == weights


def test_kill_9_mid_round_then_the_same_command_gives_the_same_weights(student, instructions, whole, tmp_path):
    from safetensors.torch import load_file

    ref, _ = whole("dpo")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gpt4llm", *args(instructions, out, student, "dpo", "--judge", RULE)]
    p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = out / "round_1" / "checkpoint" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 600
    while not ckpt.exists():
        assert p.poll() is None and time.time() < deadline, "no checkpoint-2 in round 1"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "round_1" / "metrics.json").exists()
    db = sqlite3.connect(out / "journal.sqlite")
    before = dict(db.execute("SELECT key, created FROM calls"))
    db.close()
    samples_mtime = (out / "round_1" / "samples.jsonl").stat().st_mtime_ns
    r = run_cli(*args(instructions, out, student, "dpo", "--judge", RULE))
    assert r.returncode == 0, r.stderr[-3000:]
    db = sqlite3.connect(out / "journal.sqlite")
    after = {k: (c, a) for k, c, a in db.execute("SELECT key, created, attempts FROM calls")}
    db.close()
    assert all(after[k] == (c, 1) for k, c in before.items())  # no answer asked again
    assert (out / "round_1" / "samples.jsonl").stat().st_mtime_ns == samples_mtime
    steps = [json.loads((d / "checkpoint" / "gpt4llm_train.json").read_text())["steps"] for d in (ref / "round_1",
                                                                                                out / "round_1")]
    assert steps[0] == steps[1] > 2
    a, b = load_file(ref / "round_1" / "checkpoint" / "model.safetensors"), \
        load_file(out / "round_1" / "checkpoint" / "model.safetensors")
    import torch

    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    held = [x["text"] for x in read_jsonl(out / "round_1" / "heldout.jsonl")]
    assert held == [x["text"] for x in read_jsonl(ref / "round_1" / "heldout.jsonl")]


def test_bad_settings_are_one_line_and_exit_2(student, instructions, tmp_path):
    out = tmp_path / "o"
    cases = [(("--judge", RULE), "--samples"),
             (("--reward-model", str(tmp_path / "no-such-rm")), "not a checkpoint directory"),
             ((), "needs a scorer: --reward-model"),
             (("--judge", "rule:nope"), "unknown rule"),
             (("--judge", "rule:regex=("), "not a valid regular expression"),
             (("--judge", RULE, "--heldout", "30"), "not more than --heldout 30")]
    for i, (extra, why) in enumerate(cases):
        r = run_cli(*args(instructions, out, student, "dpo", *extra, samples="1" if i == 0 else "8"))
        assert r.returncode == 2 and why in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()


@pytest.fixture(scope="module")
def reward_model(tiny_checkpoint, tmp_path_factory):
    """A reward model as train rm writes one (sequence classification, one output), randomly initialised."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("rm")
    config = AutoConfig.from_pretrained(tiny_checkpoint, num_labels=1)
    torch.manual_seed(3)
    LlamaForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(path)
    return path


def test_each_rounds_student_is_served_by_the_engine_and_the_reward_model_scores_as_rank(
        student, instructions, reward_model, tmp_path):
    marker = f"gpt4llm-iterate-{os.getpid()}"
    serve = f"{sys.executable} -m gpt4llm serve --model {{local_model}} --port {{port}} --served-name {marker}"
    out = tmp_path / "run"
    env = {"GPT4LLM_SERVE_PROMPT_LOG": str(tmp_path / "prompts.{pid}.jsonl")}
    r = run_cli(*args(instructions, out, student, "rejection", "--reward-model", str(reward_model), "--engine", "command",
                      "--engine-command", serve, "--max-steps", "2", "--patience", "0", "--heldout-samples", "1",
                      samples="2"), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    db = sqlite3.connect(out / "journal.sqlite")
    served = dict(db.execute("SELECT model, count(*) FROM calls GROUP BY model"))
    kinds = {k for (k,) in db.execute("SELECT DISTINCT backend FROM calls")}
    db.close()
    checkpoint = str((out / "round_1" / "checkpoint").resolve())
    # round 0's student: 8 held-out answers + 2 x 16 samples; round 1's: its 8 held-out answers
    assert kinds == {"local+command"} and served == {str(student): 40, checkpoint: 8}, served
    logs = sorted(tmp_path.glob("prompts.*.jsonl"))
    assert sorted(len(read_jsonl(f)) for f in logs) == [8, 40]  # one server per round's student
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and marker in _cmdline(pid)]
    # the reward model's scores of the round's samples are what gpt4llm rank gives the same answers
    samples = read_jsonl(out / "round_1" / "samples.jsonl")
    answers = write_jsonl(tmp_path / "answers.jsonl", [
        {"question_id": s["question_id"], "answer_id": f"{s['question_id']}-{s['sample']}", "model_id": "student",
         "text": s["text"], "meta": {"instruction": s["instruction"], "input": s["input"], "sample": s["sample"]}}
        for s in samples])
    ranked = run_cli("rank", "-r", str(reward_model), "-i", str(answers), "-o", str(tmp_path / "ranked.jsonl"))
    assert ranked.returncode == 0, ranked.stderr
    by_rank = {x["answer_id"]: x["meta"]["reward"] for x in read_jsonl(tmp_path / "ranked.jsonl")}
    mine = read_jsonl(out / "round_1" / "scores.jsonl")
    assert [m["reward"] for m in mine] == pytest.approx(
        [by_rank[f"{m['question_id']}-{m['sample']}"] for m in mine], abs=1e-5)


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
