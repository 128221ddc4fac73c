"""``train dpo``: the K = 2 case against TRL's DPOTrainer (loss and gradients), the three losses end
to end on the CLI, the reference log-probs computed once and cached, kill -9 then --resume to the
same weights, the prompt never wrapped twice, and bad input."""

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from support import run_cli, write_jsonl

from gpt4llm.schemas import Comparison
from gpt4llm.templates import ALPACA

TASKS = [("What color is the sky?", "It is blue.", "It is green, obviously."),
         ("Name a prime number.", "Seven.", "Nine is prime."),
         ("Translate 'chat' to English.", "Cat.", "Chat means talk."),
         ("What is 2+2?", "4", "5, I think")]


def comparisons(k: int = 2) -> list[dict]:
    rows = []
    for i, (q, good, bad) in enumerate(TASKS * 3):
        resp = [{"response": good + " " * (i % 3), "score": 9.0, "source": "a"},
                {"response": bad, "score": 3.0, "source": "b"}]
        if k > 2:
            resp.append({"response": f"I am not sure about {q.lower()}", "score": 6.0 + (i % 2), "source": "c"})
        rows.append({"user_input": ALPACA.prompt(q + (f" ({i})" if i >= len(TASKS) else "")), "responses_and_scores": resp})
    return rows


WORDS = ["apple", "river", "stone", "cloud", "tiger", "paper", "music", "green", "house", "light", "ocean", "train"]


def separable() -> list[dict]:
    """12 prompts, K = 3, ordered by the response's opening alone (best "Yes, gladly:", middle
    "Maybe", worst "No."): every word appears in one prompt only, so held-out prompts are learnt
    only through the pattern, and chance on their pairs is 1/2."""
    return [{"user_input": ALPACA.prompt(f"Spell the word {w}."), "responses_and_scores": [
        {"response": f"Yes, gladly: {' '.join(w.upper())}.", "score": 9.0, "source": "a"},
        {"response": f"No. {w}?", "score": 3.0, "source": "b"},
        {"response": f"Maybe {w}", "score": 6.0 + (i % 2), "source": "c"}]} for i, w in enumerate(WORDS)]


def tiny(tok, seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    m = LlamaForCausalLM(cfg).float()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    return m


@pytest.mark.parametrize("loss", ["sigmoid", "pairs"])
def test_k2_loss_and_gradients_equal_trls_dpo_trainer(loss, tmp_path):
    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from gpt4llm.backends.local import load_model
    from gpt4llm.train.dpo import DPOCollator, dpo_loss, encode_groups, policy_logps, reference_logps

    tok0, _ = load_model("smollm2-135m-instruct")
    tok0.save_pretrained(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    rows = [Comparison.model_validate(c) for c in comparisons(2)[:4]]
    ref_model = tiny(tok, 0).eval()
    torch.manual_seed(1)  # the policy moved away from the reference, so the loss is not just log 2
    moved = {k: v + 0.05 * torch.randn_like(v) for k, v in ref_model.state_dict().items()}
    # TRL: its own tokenization, collator, log-probs and sigmoid loss.
    policy_trl = tiny(tok, 0)
    policy_trl.load_state_dict(moved)
    args = DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, loss_type=["sigmoid"], bf16=False,
                     gradient_checkpointing=False, use_cpu=True, report_to=[], per_device_train_batch_size=4,
                     disable_dropout=True)
    data = [{"prompt": c.user_input, "chosen": c.responses_and_scores[0].response,
             "rejected": c.responses_and_scores[1].response} for c in rows]
    trainer = DPOTrainer(model=policy_trl, ref_model=copy.deepcopy(ref_model), args=args,
                         train_dataset=datasets.Dataset.from_list(data), processing_class=tok)
    b = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(4)]))
    trainer.model.train()
    trl_loss = trainer.compute_loss(trainer.model, b)
    trl_loss.backward()
    trl_grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
    # Ours: each prompt's responses once, packed rows, the reference computed from the reference model.
    groups, _ = encode_groups(rows, tok, ALPACA, 512)
    collator = DPOCollator(tok.pad_token_id, 0.5)
    for g, ref in zip(groups, reference_logps(ref_model, groups, collator, 4)):
        g["ref"] = ref
    policy = tiny(tok, 0)
    policy.load_state_dict(moved)
    policy.train()
    batch = collator(groups)
    ours, _ = dpo_loss(policy_logps(policy, batch), batch["ref"], batch["scores"], batch["group_of"], 0.1, loss)
    ours.backward()
    assert abs(ours.item() - trl_loss.item()) < 1e-5, (ours.item(), trl_loss.item())
    for name, p in policy.named_parameters():
        g = trl_grads.get(name, trl_grads.get(name.replace("model.", "model.model.", 1)))
        assert g is not None and torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4), name


def test_the_prompt_is_used_as_it_is_never_wrapped_twice(tiny_checkpoint):
    from transformers import AutoTokenizer

    from gpt4llm.train.dpo import encode_groups

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    rows = [Comparison.model_validate(c) for c in comparisons(2)[:2]]
    groups, _ = encode_groups(rows, tok, ALPACA, 512)
    for g, c in zip(groups, rows):
        for ids, labels, r in zip(g["seqs"], g["labels"], c.responses_and_scores):
            prompt = tok.decode([t for t, lab in zip(ids, labels) if lab == -100])
            assert prompt == c.user_input and prompt.count("Below is an instruction") == 1
            assert tok.decode([t for t, lab in zip(ids, labels) if lab != -100]) == r.response + tok.eos_token


def dpo_args(data, out, model, *extra):
    return ("train", "dpo", "--data", str(data), "-o", str(out), "--model", f"local:{model}", "--lr", "1e-3",
            "--batch-size", "4", "--per-device-batch", "2", "--warmup-ratio", "0", "--logging-steps", "1",
            "--eval-split", "0.25", "--beta", "0.1", "-q", *extra)


@pytest.mark.parametrize("loss", ["sigmoid", "pairs", "plackett-luce"])
def test_train_dpo_end_to_end(loss, tmp_path, tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "cmp.jsonl", separable())
    out = tmp_path / "dpo"
    r = run_cli(*dpo_args(data, out, tiny_checkpoint, "--loss", loss, "--epochs", "2", "--save-steps", "2"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no template saved with the student" in r.stdout and "reference log-probs computed" in r.stdout
    meta = json.loads((out / "gpt4llm_train.json").read_text())
    assert meta["status"] == "done" and meta["kind"] == "dpo" and meta["steps"] == 6
    assert meta["data_stats"]["pairs"] == 36 and meta["data_stats"]["held_out_prompts"] == 3
    assert (out / "ref_logps.json").is_file() and (out / "checkpoint-6").is_dir()
    m = meta["metrics"]
    # the 3 held-out prompts' 9 pairs, never trained on: chance is 0.5 (and 0 before any update, as
    # a zero margin is not a correct ranking); 8 of 9 or better means the pattern was learnt
    assert m["eval_pairs"] == 9 and m["eval_preference_accuracy"] >= 8 / 9, m
    logs = [x for x in meta["log_history"] if "loss" in x]
    assert logs and all("rewards/margins" in x and "logps/chosen" in x for x in logs)
    evals = [x for x in meta["log_history"] if "eval_preference_accuracy" in x]
    assert len(evals) >= 3  # at steps 2 and 4 during training too, then at the end
    assert 0 < evals[0]["eval_reward_margin"] < m["eval_reward_margin"], evals  # the held-out margin grows
    AutoModelForCausalLM.from_pretrained(out)  # the final model at the output root
    assert (out / "gpt4llm_template.json").is_file()


def test_dpo_learns_the_preference(tmp_path, tiny_checkpoint):
    data = write_jsonl(tmp_path / "cmp.jsonl", comparisons(2) * 3)
    out = tmp_path / "dpo"
    r = run_cli(*dpo_args(data, out, tiny_checkpoint, "--epochs", "3", "--lr", "3e-3", "--eval-split", "0"))
    assert r.returncode == 0, r.stderr[-3000:]
    logs = [x for x in json.loads((out / "gpt4llm_train.json").read_text())["log_history"] if "loss" in x]
    assert logs[-1]["rewards/accuracy"] > 0.9 and logs[-1]["rewards/margins"] > logs[0]["rewards/margins"]
    assert logs[-1]["loss"] < logs[0]["loss"]


def test_bf16_implicit_reward_is_zero_at_step_0(tmp_path, tiny_checkpoint):
    """Before any update the policy IS the reference, so r = beta (log pi - log pi_ref) must be 0 for
    every response and the sigmoid loss -log sigmoid(0) = log 2, also under --precision bf16 (CPU
    autocast): the reference must go through the same autocast as the policy's forward."""
    data = write_jsonl(tmp_path / "cmp.jsonl", comparisons(2))
    out = tmp_path / "dpo"
    # one optimizer step over all 12 prompts in one micro-batch: the logged values are the step-0 model's
    r = run_cli(*dpo_args(data, out, tiny_checkpoint, "--loss", "sigmoid", "--precision", "bf16", "--max-steps", "1",
                          "--batch-size", "12", "--per-device-batch", "12", "--eval-split", "0"))
    assert r.returncode == 0, r.stderr[-3000:]
    first = next(x for x in json.loads((out / "gpt4llm_train.json").read_text())["log_history"] if "loss" in x)
    assert (first["rewards/chosen"], first["rewards/rejected"], first["rewards/margins"]) == (0.0, 0.0, 0.0), first
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-7), first


def test_kill_then_resume_gives_equal_weights_and_no_second_reference(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "cmp.jsonl", comparisons(3) * 2)
    common = ("--epochs", "2", "--save-steps", "1")
    whole = tmp_path / "whole"
    assert run_cli(*dpo_args(data, whole, tiny_checkpoint, *common)).returncode == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gpt4llm", *dpo_args(data, out, tiny_checkpoint, *common)]
    p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "checkpoint-3" / "trainer_state.json").exists():
        assert p.poll() is None and time.time() < deadline, "no checkpoint-3"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    ref_mtime = (out / "ref_logps.json").stat().st_mtime_ns
    r = run_cli(*dpo_args(data, out, tiny_checkpoint, *common, "--resume"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reference log-probs read from the cache" in r.stdout
    assert (out / "ref_logps.json").stat().st_mtime_ns == ref_mtime
    a, b = load_file(whole / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nothing_to_prefer_is_one_line_and_exit_2(tmp_path, tiny_checkpoint):
    tied = [{"user_input": ALPACA.prompt(q), "responses_and_scores": [{"response": a, "score": 8, "source": "x"},
                                                                      {"response": b, "score": 8, "source": "y"}]}
            for q, a, b in TASKS]
    single = [{"user_input": ALPACA.prompt(q), "responses_and_scores": [{"response": a, "score": 8, "source": "x"}]}
              for q, a, _ in TASKS]
    for rows, why in ((tied, "4 all tied"), (single, "4 with fewer than 2")):
        r = run_cli(*dpo_args(write_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "o", tiny_checkpoint))
        assert r.returncode == 2 and "Traceback" not in r.stderr and why in r.stderr, r.stderr
        assert not (tmp_path / "o").exists()


def test_dry_run_prints_token_and_pair_statistics(tmp_path, tiny_checkpoint):
    data = write_jsonl(tmp_path / "cmp.jsonl", comparisons(3))
    r = run_cli(*dpo_args(data, tmp_path / "o", tiny_checkpoint, "--dry-run"))
    assert r.returncode == 0, r.stderr
    assert "data: 12 prompts, 36 responses, 36 scored pairs (12 best-vs-worst)" in r.stdout
    assert not (tmp_path / "o").exists()
