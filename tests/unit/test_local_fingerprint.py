"""A local judge's fingerprint: its weights, read in sampled chunks, so a fine-tuned copy (every
tensor moved) is told apart from its base while a copy of the same files is not."""

import json
import shutil

import numpy as np
from safetensors.numpy import save_file

from gpt4llm.backends.local import weights_fingerprint


def checkpoint(path, weights):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    save_file(weights, str(path / "model.safetensors"))
    return path


def test_weights_fingerprint_follows_the_weights_not_the_path(tmp_path):
    rng = np.random.default_rng(0)
    base = {"w": rng.standard_normal((1024, 1536)).astype(np.float32)}  # 6 MB: read in sampled chunks
    a = checkpoint(tmp_path / "a", base)
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    tuned = checkpoint(tmp_path / "tuned", {"w": base["w"] + np.float32(1e-3)})  # a training step moves every value
    fa = weights_fingerprint(f"{a}")
    assert fa.startswith("weights-sha256:") and fa == weights_fingerprint(f"{copy}")
    assert weights_fingerprint(f"{tuned}") != fa
    other_config = tmp_path / "cfg"
    shutil.copytree(a, other_config)
    (other_config / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 65}))
    assert weights_fingerprint(f"{other_config}") != fa
    assert weights_fingerprint("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub id: the revision loaded instead
