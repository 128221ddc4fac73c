import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def openai_server():
    from support.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_env(openai_server):
    """Environment for a CLI subprocess that talks to the loopback server."""
    return {"OPENAI_API_KEY": openai_server.api_key, "OPENAI_BASE_URL": openai_server.url}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A 2-layer randomly initialised Llama with the embedded model's tokenizer, minus its chat
    template (so prompts go in raw, as for a student trained on the Alpaca template)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gpt4llm.backends.local import load_model

    tok, _ = load_model("smollm2-135m-instruct")
    path = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok = AutoTokenizer.from_pretrained(str(tok.name_or_path))
    tok.chat_template = None
    tok.save_pretrained(path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
def toy_sft_data(tmp_path_factory):
    """A small, learnable Alpaca set: the answer is a fixed function of the instruction."""
    import json

    words = ["apple", "river", "stone", "cloud", "tiger", "paper", "music", "green"]
    rows = []
    for i, w in enumerate(words * 4):
        rows.append({"instruction": f"Repeat the word three times: {w}", "input": "" if i % 2 else f"case {i}",
                     "output": f"{w} {w} {w}"})
    path = tmp_path_factory.mktemp("data") / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """configs/quickstart.yaml run as a user would, killed (-9) in the middle of SFT once its first
    checkpoint is on disk, then run again to the end. Returns what the tests need to check that
    nothing was lost or done twice."""
    import json
    import os
    import signal
    import sqlite3
    import subprocess
    import time

    from support import ROOT, run_cli

    out = tmp_path_factory.mktemp("quickstart") / "study"
    cmd = [sys.executable, "-m", "gpt4llm", "run", str(ROOT / "configs" / "quickstart.yaml"), "-o", str(out), "-q"]
    first = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "models" / "student-en" / "checkpoint-1" / "trainer_state.json"
    deadline = time.time() + 600
    while not ckpt.exists():
        if first.poll() is not None:
            pytest.fail(f"the first run ended before SFT's first checkpoint: {first.stderr.read()[-2000:]}")
        if time.time() > deadline:
            os.killpg(first.pid, signal.SIGKILL)
            pytest.fail("no SFT checkpoint within 10 minutes")
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    db = sqlite3.connect(out / "journal.sqlite")
    before = {k: (c, a) for k, c, a in db.execute("SELECT key, created, attempts FROM calls")}
    db.close()
    before_markers = sorted(p.name for p in (out / "stages").glob("*.json"))
    ckpt_mtime = ckpt.stat().st_mtime_ns
    second = run_cli("run", str(ROOT / "configs" / "quickstart.yaml"), "-o", str(out), "-q", timeout=900)
    db = sqlite3.connect(out / "journal.sqlite")
    after = {k: (c, a) for k, c, a in db.execute("SELECT key, created, attempts FROM calls")}
    db.close()
    return {"out": out, "before": before, "after": after, "before_markers": before_markers, "second": second,
            "ckpt": ckpt, "ckpt_mtime": ckpt_mtime, "results": json.loads((out / "results.json").read_text())
            if (out / "results.json").exists() else None}
