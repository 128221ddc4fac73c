"""``gpt4llm train sft`` end to end on a tiny randomly initialised Llama (CPU, seconds)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from support import run_cli

from gpt4llm.templates import PromptTemplate

FAST = ("--lr", "3e-3", "--warmup-ratio", "0", "--logging-steps", "1", "--batch-size", "8",
        "--per-device-batch", "2", "-q")


def losses(out_dir):
    history = json.loads((out_dir / "gpt4llm_train.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h]


def test_loss_falls_and_checkpoint_loads_in_plain_transformers(tmp_path, tiny_checkpoint, toy_sft_data):
    out = tmp_path / "sft"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(out), "--model", f"local:{tiny_checkpoint}",
                "--epochs", "8", *FAST, "--lr", "2e-2")
    assert r.returncode == 0, r.stderr
    curve = losses(out)
    assert len(curve) == 32 and sum(curve[-4:]) / 4 < 0.4 * sum(curve[:4]) / 4, curve
    assert "[masked, no loss]>>>" in r.stdout and "<<<[trained]>>>" in r.stdout
    assert "effective batch 8 = 2 per device x 4 accumulation x 1 process" in r.stdout
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert PromptTemplate.load(out).name == "alpaca"
    ids = tok(PromptTemplate.load(out).prompt("Repeat the word three times: river"), return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]  # the saved checkpoint generates
    # served as it is: a server given chat messages renders the Alpaca prompt the student learned,
    # and the generation config stops at the tokenizer's EOS
    messages = [{"role": "user", "content": "Repeat the word three times: river"}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        PromptTemplate.load(out).prompt("Repeat the word three times: river")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tok.eos_token_id


def test_dry_run_prints_token_statistics_and_trains_nothing(tmp_path, tiny_checkpoint, toy_sft_data):
    out = tmp_path / "sft"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(out), "--model", f"local:{tiny_checkpoint}",
                "--dry-run", "--no-packing", "--max-length", "40", "--overlong", "skip")
    assert r.returncode == 0, r.stderr
    assert "data: " in r.stdout and "padding share" in r.stdout and not out.exists()
    line = next(x for x in r.stdout.splitlines() if x.startswith("data: "))
    assert "of 32 records" in line and "skipped" in line


def test_output_dir_with_another_run_is_refused(tmp_path, tiny_checkpoint, toy_sft_data):
    out = tmp_path / "sft"
    args = ("train", "sft", "-d", str(toy_sft_data), "-o", str(out), "--model", f"local:{tiny_checkpoint}", "--max-steps", "1", *FAST)
    assert run_cli(*args).returncode == 0
    r = run_cli(*args)
    assert r.returncode == 2 and "already holds a run; pass --resume" in r.stderr
    r = run_cli(*args[:-1], "--seed", "7", "--resume", "-q")
    assert r.returncode == 2 and "holds a different run" in r.stderr
    assert run_cli(*args, "--overwrite").returncode == 0


def test_resume_after_kill_ends_with_the_same_weights(tmp_path, tiny_checkpoint, toy_sft_data):
    base = ("train", "sft", "-d", str(toy_sft_data), "--model", f"local:{tiny_checkpoint}", "--epochs", "2",
            "--save-steps", "2", *FAST)
    ref = tmp_path / "ref"
    assert run_cli(*base, "-o", str(ref)).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", *base, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint-4" / "trainer_state.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists()  # killed mid-run, before the end
    r = run_cli(*base, "-o", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    a, b = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_lora_with_merge_saves_full_weights(tmp_path, tiny_checkpoint, toy_sft_data):
    out = tmp_path / "lora"
    r = run_cli("train", "sft", "-d", str(toy_sft_data), "-o", str(out), "--model", f"local:{tiny_checkpoint}",
                "--lora", "--lora-r", "4", "--merge", "--max-steps", "2", *FAST)
    assert r.returncode == 0, r.stderr
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert not any("lora" in k for k in merged.state_dict())
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert any("q_proj" in k for k in changed)  # the adapters were trained and merged in


@pytest.mark.timeout(600)
def test_two_process_ddp_gives_the_same_loss_curve_as_one(tmp_path, tiny_checkpoint, toy_sft_data):
    common = ("--model", f"local:{tiny_checkpoint}", "-d", str(toy_sft_data), "--epochs", "1", "--no-packing", *FAST)
    one = tmp_path / "one"
    assert run_cli("train", "sft", "-o", str(one), *common).returncode == 0
    two = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                        "-m", "gpt4llm", "train", "sft", "-o", str(two), *common],
                       capture_output=True, text=True, timeout=500, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "effective batch 8 = 2 per device x 2 accumulation x 2 processes" in r.stdout
    torch.testing.assert_close(torch.tensor(losses(two)), torch.tensor(losses(one)), rtol=1e-3, atol=1e-4)
