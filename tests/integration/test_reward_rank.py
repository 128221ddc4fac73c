"""``train rm`` learns a synthetic preference on a tiny model; ``rank`` does best-of-N."""

import json

import pytest

from support import read_jsonl, run_cli, write_jsonl

from gpt4llm.templates import ALPACA

TOPICS = ["cats", "rivers", "stars", "bread", "trains", "music", "rain", "chess", "tea", "maps", "boats", "snow"]


def synthetic_comparisons(n: int) -> list[dict]:
    """Good answers are on topic and polite; bad ones are a refusal. Clearly distinguishable."""
    rows = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        rows.append({"user_input": ALPACA.prompt(f"Tell me about {t} ({i})."), "responses_and_scores": [
            {"response": f"Sure! Here is a helpful answer about {t}.", "score": 9.0, "source": "good"},
            {"response": "No. I will not answer that.", "score": 2.0, "source": "bad"},
            {"response": f"Maybe something about {t}, not sure.", "score": 5.0, "source": "meh"}]})
    return rows


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("rm")
    data = write_jsonl(d / "cmp.jsonl", synthetic_comparisons(96))
    out = d / "rm"
    r = run_cli("train", "rm", "-d", str(data), "-o", str(out), "--model", f"local:{tiny_checkpoint}", "--lr", "3e-3",
                "--epochs", "3", "--batch-size", "8", "--per-device-batch", "8", "--eval-split", "0.25", "-q")
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_reward_model_learns_a_clear_preference(trained_rm):
    out, stdout = trained_rm
    meta = json.loads((out / "gpt4llm_train.json").read_text())
    m = meta["metrics"]
    assert meta["pairs"] == 96 * 3 and meta["held_out"] == 24
    assert m["pairwise_accuracy"] >= 0.9 and m["pairs"] == 24 * 3, m
    assert m["spearman"] > 0.5 and m["reward_gap_mean"] > 0
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1
    assert "held out: pairwise accuracy" in stdout


def test_rank_selects_the_best_of_n_and_ranking_groups(tmp_path, trained_rm):
    out, _ = trained_rm
    answers = []
    for q, topic in enumerate(["cats", "tea", "snow"]):
        texts = [f"Maybe something about {topic}, not sure.", "No. I will not answer that.",
                 f"Sure! Here is a helpful answer about {topic}."]
        for k, text in enumerate(texts):
            answers.append({"question_id": q, "answer_id": f"{q}-{k}", "model_id": "student", "text": text,
                            "meta": {"sample": k, "instruction": f"Tell me about {topic} (x).", "input": ""}})
    src = write_jsonl(tmp_path / "answers.jsonl", answers)
    r = run_cli("rank", "-r", str(out), "-i", str(src), "-o", str(tmp_path / "ranked.jsonl"))
    assert r.returncode == 0, r.stderr
    ranked = read_jsonl(tmp_path / "ranked.jsonl")
    assert sorted(a["meta"]["rank"] for a in ranked if a["question_id"] == 0) == [1, 2, 3]
    r = run_cli("rank", "-r", str(out), "-i", str(src), "-o", str(tmp_path / "r1.jsonl"), "--select", "best")
    best = read_jsonl(tmp_path / "r1.jsonl")
    assert [a["text"].startswith("Sure!") for a in best] == [True] * 3 and best[0]["model_id"] == "student-R1"
    run_cli("rank", "-r", str(out), "-i", str(src), "-o", str(tmp_path / "g3.jsonl"), "--group", "3")
    assert all(a["text"].startswith("No.") for a in read_jsonl(tmp_path / "g3.jsonl"))


def test_a_checkpoint_that_is_not_a_reward_model_is_refused(tmp_path, tiny_checkpoint):
    src = write_jsonl(tmp_path / "a.jsonl", [{"question_id": 1, "answer_id": "a", "model_id": "m", "text": "x"}])
    r = run_cli("rank", "-r", str(tiny_checkpoint), "-i", str(src), "-o", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "not a reward model" in r.stderr and "LlamaForCausalLM" in r.stderr
