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
