"""SFT throughput: gpt4llm `train sft` vs TRL's `SFTTrainer` vs the Stanford Alpaca `train.py`
recipe, in one run on the same hardware.

Data: real instruction records read in place from ../shared/data (which holds no alpaca_gpt4 file):
the Vicuna-80 questions with the answers of five models (400) and the 252 user-oriented
instructions of Self-Instruct with their first instance (input + output), formatted with the Alpaca
prompt; shuffled, those of at most MAX_LEN tokens kept (so truncation plays no part and TRL's
padding-free mode, which does not enforce max_length, can be used), the first RECORDS taken.
Backbone: the embedded SmolLM2-135M-Instruct (dequantized from its GGUF, fp32), as the issue asks;
BENCH_SFT_BACKBONE=tiny uses a randomly initialised 2-layer Llama (hidden 256) with the same
tokenizer instead, a quick check of the same code paths in a few minutes.
Every contender: 1 epoch over the same records, effective batch 16 = 8 per device x 2 accumulation
(so the same number of optimizer steps), lr 2e-4 cosine, warm-up 3%, fp32 on the CPU, loss on the
response + EOS only. Each runs in its own process; the same patch of ``Trainer`` in each measures
``Trainer.train``'s wall time and, per micro-batch, the tokens processed (the tensor's size), the
real (non-pad) tokens and the examples' lengths. Peak memory is the process's max RSS (and
torch.cuda's max allocated on a GPU).

FLOP fraction, two ways: tokens (real / processed) and FLOPs (useful / executed, estimated as
6 x linear params per token plus 12 x hidden x layers x n^2 of attention per sequence; useful counts
each example's own n^2, executed each row's L^2, since SDPA with a mask computes the whole row:
packed rows pay for attention across examples that the mask then drops, padded rows for the pad).
Useful training FLOP/s are also given as a fraction of a dense torch.mm measured in the same run,
in the dtype the training matmuls run in (bf16 under autocast).

Contenders: gpt4llm default (padding-free: each micro-batch's examples end to end in one or a few
rows, position ids restarting at 0, the row count chosen against SDPA's L x L cost) and --no-packing (length-grouped, right-padded); TRL padding_free=True (its best
mode here: it needs no FlashAttention in TRL 1.x, transformers builds the block-diagonal mask from
the position ids for SDPA) and TRL length-grouped padded batches; the Alpaca recipe (per-example
tokenization, random batches padded to the longest, HF Trainer, mask = ids != pad).
Targets (issue): gpt4llm >= 1.0x TRL's best and >= 1.3x Alpaca's non-pad tokens/s, padding <= 5%. Each contender also
reports its held-out token-mean loss after training (the same held-out records, one tokenization and
normalisation), so speed is compared at equal learning.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import run_child, save

HERE = Path(__file__).parent
DATA = HERE.parent.parent / "shared" / "data"
BACKBONE = os.environ.get("BENCH_SFT_BACKBONE", "smollm2")  # or "tiny"
RECORDS = int(os.environ.get("BENCH_SFT_RECORDS", 200 if BACKBONE == "smollm2" else 400))
MAX_LEN, PER_DEVICE, ACCUM, LR = 512, 8, 2, 2e-4
HELD_OUT = 64  # records after the training ones, for each contender's held-out loss
# One precision for all: bf16 autocast (the Alpaca recipe's and TRL's default; AMX/AVX512-BF16 on
# this CPU), or BENCH_SFT_PRECISION=fp32. Activation checkpointing off for all (TRL turns it on
# by default: slower, less memory; it would compare two different trade-offs).
PRECISION = os.environ.get("BENCH_SFT_PRECISION", "bf16")
CONTENDERS = {  # name -> (child mode, its settings as said in the results)
    "gpt4llm": ("gpt4llm", "default: padding-free rows (examples end to end, position ids reset; rows planned "
                           "for SDPA's L x L cost), example-mean loss"),
    "gpt4llm_no_packing": ("gpt4llm-nopack", "--no-packing: length-grouped, right-padded micro-batches"),
    "trl_padding_free": ("trl-pf", "SFTConfig(padding_free=True, completion_only_loss=True, max_length=None)"),
    "trl_grouped": ("trl-grouped", "SFTConfig(padding_free=False, train_sampling_strategy='group_by_length', "
                                   "completion_only_loss=True, max_length=512)"),
    "alpaca_baseline": ("alpaca", "Stanford Alpaca train.py: per-example tokenization, random batches padded "
                                  "to the longest, HF Trainer"),
}

CHILD = r'''
import json, os, resource, sys, time
import torch, transformers
mode, data_file, backbone, out = sys.argv[1:5]
PER_DEVICE, ACCUM, LR, MAX_LEN = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
PRECISION, HELD = sys.argv[9], sys.argv[10]
from gpt4llm.train.common import checkpointing_flag
seen = {"processed": 0, "real": 0, "micro_batches": 0, "lengths": [], "row_lengths": []}
timing = {}
step, train = transformers.Trainer.training_step, transformers.Trainer.train

def counting_step(self, model, inputs, *a, **k):  # the same count for every contender
    ids = inputs["input_ids"]
    lengths = inputs.pop("_lengths", None)
    if lengths is not None:  # the Alpaca collator says how long its examples are (its mask hides EOS = pad)
        lengths = lengths.tolist()
    elif "attention_mask" in inputs:
        lengths = inputs["attention_mask"].sum(1).tolist()
    else:  # padding-free: an example starts at each position id 0; a segment without labels is a pad block
        lengths = []
        for row, labels in zip(inputs["position_ids"], inputs["labels"]):
            starts = (row == 0).nonzero().flatten().tolist() + [row.numel()]
            lengths += [b - a for a, b in zip(starts, starts[1:]) if (labels[a:b] != -100).any()]
    seen["processed"] += ids.numel(); seen["real"] += sum(lengths); seen["micro_batches"] += 1
    seen["lengths"] += lengths; seen["row_lengths"] += [ids.shape[1]] * ids.shape[0]
    return step(self, model, inputs, *a, **k)

def timed_train(self, *a, **k):
    timing["rss_before_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    r = train(self, *a, **k)
    timing["seconds"] = time.perf_counter() - t0
    timing["steps"] = self.state.global_step
    timing["train_loss"] = r.training_loss
    return r

transformers.Trainer.training_step, transformers.Trainer.train = counting_step, timed_train
common = dict(num_train_epochs=1, learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03,
              per_device_train_batch_size=PER_DEVICE, gradient_accumulation_steps=ACCUM, logging_steps=10,
              save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(), seed=42, data_seed=42,
              disable_tqdm=True, bf16=PRECISION == "bf16", **checkpointing_flag(False))
if mode.startswith("gpt4llm"):
    from pathlib import Path
    from gpt4llm.train.sft import SFTSettings, run
    run(SFTSettings(data=data_file, output_dir=Path(out), model=f"local:{backbone}", epochs=1, learning_rate=LR,
                  batch_size=PER_DEVICE * ACCUM, per_device_batch=PER_DEVICE, max_length=MAX_LEN,
                  packing=mode == "gpt4llm", save_steps=10**6, logging_steps=10, quiet=True, precision=PRECISION))
    stats = json.loads((Path(out) / "gpt4llm_train.json").read_text())["data_stats"]
    timing["predicted_padding_share"], timing["boundary_merges"] = stats["padding_share"], stats["boundary_merges"]
else:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from gpt4llm.templates import ALPACA
    rows = [json.loads(x) for x in open(data_file)]
    tok = AutoTokenizer.from_pretrained(backbone, model_max_length=MAX_LEN)
    model = AutoModelForCausalLM.from_pretrained(backbone, dtype=torch.float32)
    if mode.startswith("trl"):
        from trl import SFTConfig, SFTTrainer
        ds = datasets.Dataset.from_list([{"prompt": ALPACA.prompt(r["instruction"], r["input"]), "completion": r["output"]}
                                         for r in rows])
        pf = mode == "trl-pf"
        args = SFTConfig(output_dir=out, completion_only_loss=True, padding_free=pf, max_length=None if pf else MAX_LEN,
                         train_sampling_strategy="random" if pf else "group_by_length", **common)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    else:  # Stanford Alpaca train.py: SupervisedDataset + DataCollatorForSupervisedDataset + Trainer
        from transformers import Trainer, TrainingArguments
        if tok.pad_token is None:  # smart_tokenizer_and_embedding_resize (SmolLM2's pad is EOS: not needed)
            tok.add_special_tokens({"pad_token": "[PAD]"}); model.resize_token_embeddings(len(tok))
        def tokenize(s):  # _tokenize_fn: one string at a time
            return tok(s, return_tensors="pt", padding="longest", max_length=tok.model_max_length, truncation=True).input_ids[0]
        class SupervisedDataset(torch.utils.data.Dataset):
            def __init__(self):
                sources = [ALPACA.prompt(r["instruction"], r["input"]) for r in rows]
                targets = [f"{r['output']}{tok.eos_token}" for r in rows]
                self.input_ids = [tokenize(s + t) for s, t in zip(sources, targets)]
                self.labels = [ids.clone() for ids in self.input_ids]
                for label, s in zip(self.labels, sources):
                    label[:len(tokenize(s))] = -100
            def __len__(self): return len(self.input_ids)
            def __getitem__(self, i): return {"input_ids": self.input_ids[i], "labels": self.labels[i]}
        def collate(instances):
            ids = torch.nn.utils.rnn.pad_sequence([x["input_ids"] for x in instances], batch_first=True, padding_value=tok.pad_token_id)
            labels = torch.nn.utils.rnn.pad_sequence([x["labels"] for x in instances], batch_first=True, padding_value=-100)
            return {"input_ids": ids, "labels": labels, "attention_mask": ids.ne(tok.pad_token_id),
                    "_lengths": torch.tensor([len(x["input_ids"]) for x in instances])}  # counted, then dropped
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=out, **common), train_dataset=SupervisedDataset(),
                          data_collator=collate)
    trainer.train()
# What was learned, measured the same way for every contender: the token-mean loss (summed over the
# held-out records' response + EOS tokens, divided by their number) with one tokenization (ALPACA.encode).
import torch.nn.functional as F
from transformers import AutoModelForCausalLM as _LM, AutoTokenizer as _Tok
from gpt4llm.templates import ALPACA as _ALPACA
learned = _LM.from_pretrained(out, dtype=torch.float32) if mode.startswith("gpt4llm") else trainer.model
learned = learned.float().eval()
tok_eval, total, count = _Tok.from_pretrained(backbone), 0.0, 0
with torch.no_grad():
    for rec in map(json.loads, open(HELD)):
        ex = _ALPACA.encode(tok_eval, rec["instruction"], rec["input"], rec["output"])
        ids, labels = torch.tensor([ex["input_ids"]]), torch.tensor(ex["labels"][1:])
        logits = learned(input_ids=ids).logits[0, :-1].float()
        total += F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum").item()
        count += int((labels != -100).sum())
timing["held_out_loss"] = total / count
cfg = transformers.AutoConfig.from_pretrained(backbone)
model = transformers.AutoModelForCausalLM.from_config(cfg)
linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({**timing, **seen, "linear_params": linear, "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers,
                  "cuda_peak_mb": cuda_peak}))
'''


def records() -> list[dict]:
    """Real Alpaca-style records: Vicuna-80 questions x five models' answers, user-oriented instructions."""
    vicuna = DATA / "vicuna-eval-2023"
    questions = {q["question_id"]: q["text"] for q in map(json.loads, (vicuna / "question.jsonl").read_text().splitlines())}
    rows = [{"instruction": questions[a["question_id"]], "input": "", "output": a["text"]}
            for f in sorted(vicuna.glob("answer_*.jsonl")) for a in map(json.loads, f.read_text().splitlines())]
    for task in map(json.loads, (DATA / "gpt4llm-paper" / "user_oriented_instructions.jsonl").read_text().splitlines()):
        first = task["instances"][0]
        rows.append({"instruction": task["instruction"], "input": first["input"], "output": first["output"]})
    random.Random(0).shuffle(rows)
    return rows


def make_backbone(path: Path):
    """The backbone every contender loads from one directory: (tokenizer, its description)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gpt4llm.backends.local import EMBEDDED, load_model, resolve
    from gpt4llm.train.common import load_tokenizer

    if BACKBONE == "smollm2":
        load_model(EMBEDDED)  # dequantizes the GGUF once into gpt4llm's cache: a plain HF checkpoint
        source, _ = resolve(EMBEDDED)
        if source.endswith(".gguf"):
            raise SystemExit("bench_sft: the embedded model could not be cached as a checkpoint directory")
        path.symlink_to(source, target_is_directory=True)
        return AutoTokenizer.from_pretrained(path), "SmolLM2-135M-Instruct (the embedded model, dequantized Q4_1), fp32"
    tok = load_tokenizer("local:smollm2-135m-instruct")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return tok, "2-layer Llama (hidden 256, tied embeddings), SmolLM2 tokenizer (49,152), random init, fp32"


def measure(cmd: list[str]) -> tuple[dict, float, float]:
    """Run a contender in its own process: (its JSON line, its own peak RSS in MB, wall seconds)."""
    out, rss, wall = run_child(cmd)
    return json.loads(out.strip().splitlines()[-1]), rss, wall


def matmul_gflops(dtype: str, n: int = 1024, reps: int = 30) -> float:
    """Dense torch.mm GFLOP/s on this machine in the given dtype (bf16 uses AMX/AVX512-BF16 here)."""
    import torch

    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    for _ in range(3):
        torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def summary(r: dict, rss: float, wall: float, peak_gflops: float) -> dict:
    per_token, attention = 6 * r["linear_params"], 12 * r["hidden"] * r["layers"]
    useful = per_token * r["real"] + attention * sum(n * n for n in r["lengths"])
    executed = per_token * r["processed"] + attention * sum(n * n for n in r["row_lengths"])
    return {"non_pad_tokens_per_s": round(r["real"] / r["seconds"], 1), "train_seconds": round(r["seconds"], 2),
            "process_seconds": round(wall, 1), "optimizer_steps": r["steps"], "micro_batches": r["micro_batches"],
            "examples": len(r["lengths"]), "non_pad_tokens": r["real"], "tokens_processed": r["processed"],
            "padding_share": round(1 - r["real"] / r["processed"], 4),
            "token_fraction": round(r["real"] / r["processed"], 4), "flop_fraction": round(useful / executed, 4),
            "useful_gflops_per_s": round(useful / r["seconds"] / 1e9, 1),
            "mfu_of_matmul_peak": round(useful / r["seconds"] / 1e9 / peak_gflops, 3),
            "peak_rss_mb": round(rss), "rss_before_train_mb": round(r["rss_before_mb"]),
            "cuda_peak_mb": r["cuda_peak_mb"] and round(r["cuda_peak_mb"]), "train_loss": round(r["train_loss"], 3),
            "held_out_loss": round(r["held_out_loss"], 4),
            **{k: r[k] for k in ("predicted_padding_share", "boundary_merges") if k in r}}


def source_state() -> dict:
    """Which gpt4llm was measured: the commit, and any uncommitted change under src/."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_src": git("status", "--porcelain", "--", str(HERE.resolve().parent / "src")).splitlines()}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gpt4llm-bench-sft-"))
    tok, backbone = make_backbone(work / "backbone")
    from gpt4llm.templates import ALPACA

    rows = records()
    fits = [r for r in rows if len(ALPACA.encode(tok, r["instruction"], r["input"], r["output"])["input_ids"]) <= MAX_LEN]
    chosen, held = fits[:RECORDS], fits[RECORDS:RECORDS + HELD_OUT]
    data, held_file = work / "data.jsonl", work / "held.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    held_file.write_text("".join(json.dumps(r) + "\n" for r in held))
    peaks = {dtype: matmul_gflops(dtype) for dtype in ("float32", "bfloat16")}
    peak = peaks["bfloat16" if PRECISION == "bf16" else "float32"]  # the dtype the matmuls of training run in
    results = {}
    for name, (mode, how) in CONTENDERS.items():
        r, rss, wall = measure([sys.executable, "-c", CHILD, mode, str(data), str(work / "backbone"), str(work / mode),
                                str(PER_DEVICE), str(ACCUM), str(LR), str(MAX_LEN), PRECISION, str(held_file)])
        results[name] = {"settings": how, **summary(r, rss, wall, peak)}
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    ours = results["gpt4llm"]
    best_trl = max(("trl_padding_free", "trl_grouped"), key=lambda k: results[k]["non_pad_tokens_per_s"])
    rate = {k: v["non_pad_tokens_per_s"] for k, v in results.items()}
    vs_trl, vs_alpaca = rate["gpt4llm"] / rate[best_trl], rate["gpt4llm"] / rate["alpaca_baseline"]
    save("sft" if BACKBONE == "smollm2" else f"sft_{BACKBONE}", {"backbone": backbone,
                 "data": f"{len(chosen)} real records (Vicuna-80 x 5 models' answers + user-oriented instructions, "
                         f"{len(rows) - len(fits)} of {len(rows)} over {MAX_LEN} tokens left out), Alpaca prompt",
                 "held_out": f"{len(held)} further records; held_out_loss = summed cross-entropy of their response + EOS "
                             "tokens / their number, one tokenization (ALPACA.encode) for every contender",
                 "effective_batch": f"{PER_DEVICE * ACCUM} = {PER_DEVICE} per device x {ACCUM} accumulation",
                 "epochs": 1, "lr": LR, "precision": f"{PRECISION} for every contender (bf16: autocast), "
                                                  "activation checkpointing off for every contender", "gpt4llm_source": source_state(), "matmul_peak_gflops": round(peak, 1),
                 "matmul_gflops_by_dtype": {k: round(v, 1) for k, v in peaks.items()}, **results,
                 "best_trl": best_trl, "speedup_vs_trl": round(vs_trl, 2),
                 "speedup_vs_trl_padding_free": round(rate["gpt4llm"] / rate["trl_padding_free"], 2),
                 "speedup_vs_trl_grouped": round(rate["gpt4llm"] / rate["trl_grouped"], 2),
                 "speedup_vs_alpaca": round(vs_alpaca, 2),
                 "no_packing_speedup_vs_alpaca": round(rate["gpt4llm_no_packing"] / rate["alpaca_baseline"], 2),
                 "targets": {"vs_trl": 1.0, "vs_alpaca": 1.3, "padding_share_max": 0.05},
                 "meets_target": vs_trl >= 1.0 and vs_alpaca >= 1.3 and ours["padding_share"] <= 0.05})


if __name__ == "__main__":
    main()
