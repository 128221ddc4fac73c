"""Every shipped config loads and says what the README says it does."""

import json
from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_accelerate_configs_load_and_name_their_mode():
    modes = {p.stem: yaml.safe_load(p.read_text())["distributed_type"] for p in (CONFIGS / "accelerate").glob("*.yaml")}
    assert modes == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero3": "DEEPSPEED"}
    ds = yaml.safe_load((CONFIGS / "accelerate" / "deepspeed_zero3.yaml").read_text())
    assert (CONFIGS.parent / ds["deepspeed_config"]["deepspeed_config_file"]).is_file()
    assert ds["num_processes"] == 16  # the paper's 16 GPUs


def test_deepspeed_json_is_the_papers_zero3_with_cpu_offload():
    cfg = json.loads((CONFIGS / "deepspeed" / "zero3_offload.json").read_text())
    z = cfg["zero_optimization"]
    assert z["stage"] == 3 and z["offload_param"]["device"] == "cpu" and z["offload_optimizer"]["device"] == "cpu"
    assert cfg["train_batch_size"] == "auto" and "scheduler" not in cfg  # the Trainer's cosine schedule applies
