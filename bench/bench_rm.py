"""Reward-model training: gpt4llm `train rm` (K-wise: each response encoded once per step) vs TRL's
`RewardTrainer` on the equivalent pairs, in one run on the same hardware.

Data: 192 prompts with K = 3 scored responses (all C(3,2) = 3 pairs differ in score): 160
for training (480 pairs), 32 held out. Backbone: a 2-layer Llama with the embedded SmolLM2
tokenizer, randomly initialised (the issue allows a 2-layer model for speed); same lr, epochs
and pairs per step (8 prompts = 24 pairs). Each contender runs in its own process; peak memory
is that process's max RSS. Held-out pairwise accuracy is computed by the same function for
both. Target (issue 5): >= 1.8x comparisons/s, accuracy within 2 points.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import run_child, save

HERE = Path(__file__).parent
TOPICS = "cats rivers stars bread trains music rain chess tea maps boats snow owls ferns kites tides".split()
EPOCHS, LR, PROMPTS_PER_STEP = 2, 1e-3, 8


def comparisons(n: int, seed: int = 0) -> list[dict]:
    from gpt4llm.templates import ALPACA

    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        pad = " ".join(rnd.choice(TOPICS) for _ in range(rnd.randint(5, 60)))  # varied lengths
        rows.append({"user_input": ALPACA.prompt(f"Tell me about {t} ({i}). {pad}"), "responses_and_scores": [
            {"response": f"Sure! Here is a helpful answer about {t}. {pad}", "score": 9.0, "source": "good"},
            {"response": f"No. I will not answer that. {pad}", "score": 2.0, "source": "bad"},
            {"response": f"Maybe something about {t}, not sure. {pad}", "score": 5.0, "source": "meh"}]})
    return rows


def make_backbone(path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gpt4llm.backends.local import load_model

    tok, _ = load_model("smollm2-135m-instruct")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    AutoTokenizer.from_pretrained(tok.name_or_path).save_pretrained(path)


TRL = r'''
import json, sys, time
import datasets, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer
from gpt4llm.pairs import load_comparisons
from gpt4llm.train.reward import GroupCollator, encode_groups, evaluate
backbone, train_file, held_file, out, epochs, lr, pairs_per_step = sys.argv[1:8]
tok = AutoTokenizer.from_pretrained(backbone)
rows = []
for c in load_comparisons(train_file):
    rs = c.responses_and_scores
    for i, a in enumerate(rs):
        for b in rs[i + 1:]:
            hi, lo = (a, b) if a.score > b.score else (b, a)
            rows.append({"chosen": c.user_input + hi.response, "rejected": c.user_input + lo.response})
model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
model.config.pad_token_id = tok.pad_token_id
args = RewardConfig(output_dir=out, num_train_epochs=float(epochs), learning_rate=float(lr), per_device_train_batch_size=int(pairs_per_step),
                    lr_scheduler_type="cosine", warmup_steps=0.03, max_length=512, logging_steps=5, report_to=[], save_strategy="no",
                    use_cpu=True, seed=42, disable_dropout=True)
trainer = RewardTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
t0 = time.perf_counter(); trainer.train(); seconds = time.perf_counter() - t0
held, _ = encode_groups(load_comparisons(held_file), tok, 512)
print(json.dumps({"pairs": len(rows) * float(epochs), "seconds": seconds, "metrics": evaluate(trainer.model, held, GroupCollator(tok.pad_token_id))}))
'''


def measure(cmd: list[str]) -> tuple[str, float]:
    """Run a contender in its own process: (stdout, that process's own peak RSS in MB)."""
    out, rss, _ = run_child(cmd)
    return out, rss


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gpt4llm-bench-rm-"))
    data = comparisons(192)
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data[:160]))
    (work / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data[160:]))
    (work / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    make_backbone(work / "backbone")
    pairs_per_step = PROMPTS_PER_STEP * 3
    # gpt4llm: the held-out split is the last 32 prompts by --eval-split over the same file order
    ours_out, ours_mem = measure([sys.executable, "-m", "gpt4llm", "train", "rm", "-d", str(work / "train.jsonl"), "-o",
                                  str(work / "ours"), "--model", f"local:{work / 'backbone'}", "--epochs", str(EPOCHS),
                                  "--lr", str(LR), "--batch-size", str(PROMPTS_PER_STEP), "--per-device-batch",
                                  str(PROMPTS_PER_STEP), "--eval-split", "0", "-q", "--save-steps", "100000"])
    meta = json.loads((work / "ours" / "gpt4llm_train.json").read_text())
    ours_seconds = next(h["train_runtime"] for h in meta["log_history"] if "train_runtime" in h)
    held_eval = r'''
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from gpt4llm.pairs import load_comparisons
from gpt4llm.train.reward import GroupCollator, encode_groups, evaluate
tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
held, _ = encode_groups(load_comparisons(sys.argv[2]), tok, 512)
print(json.dumps(evaluate(model, held, GroupCollator(tok.pad_token_id))))
'''
    ours_acc = json.loads(subprocess.run([sys.executable, "-c", held_eval, str(work / "ours"), str(work / "held.jsonl")],
                                         capture_output=True, text=True, check=True).stdout)
    trl_out, trl_mem = measure([sys.executable, "-c", TRL, str(work / "backbone"), str(work / "train.jsonl"),
                                str(work / "held.jsonl"), str(work / "trl"), str(EPOCHS), str(LR), str(pairs_per_step)])
    trl = json.loads(trl_out.strip().splitlines()[-1])
    pairs = 160 * 3 * EPOCHS
    ours = {"comparisons_per_s": round(pairs / ours_seconds, 1), "seconds": round(ours_seconds, 2),
            "peak_rss_mb": round(ours_mem), "held_out": ours_acc}
    theirs = {"comparisons_per_s": round(trl["pairs"] / trl["seconds"], 1), "seconds": round(trl["seconds"], 2),
              "peak_rss_mb": round(trl_mem), "held_out": trl["metrics"]}
    speedup = ours["comparisons_per_s"] / theirs["comparisons_per_s"]
    acc_gap = 100 * (ours_acc["pairwise_accuracy"] - trl["metrics"]["pairwise_accuracy"])
    save("reward_model", {"backbone": "2-layer Llama (hidden 128), SmolLM2 tokenizer, random init", "train_prompts": 160,
                          "k": 3, "pairs_per_step": pairs_per_step, "epochs": EPOCHS, "lr": LR, "gpt4llm": ours, "trl_reward_trainer": theirs,
                          "speedup": round(speedup, 2), "accuracy_gap_points": round(acc_gap, 1),
                          "targets": {"speedup": 1.8, "accuracy_within_points": 2},
                          "meets_target": speedup >= 1.8 and abs(acc_gap) <= 2})


if __name__ == "__main__":
    main()
