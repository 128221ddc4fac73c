"""`train iterate` on the embedded SmolLM2-135M student, and one round of it against the same loop
written with TRL's `RLOOTrainer`, in one run on the same hardware.

Reward model: `gpt4llm train rm` on real comparisons: the Vicuna-80 questions with the answers of five
models (FastChat's April-2023 evaluation, ../shared/data), each answer scored by its model's place in
the paper's GPT-4-judged Vicuna-80 results (5..1, as bench_dpo.py does), K = 5 per question, on the
embedded model cut to its first 2 layers (`--layers 2`); 10 questions held out for its pairwise
accuracy. Prompts: the 252 User-Oriented instructions (Self-Instruct's, ../shared/data), 32 held out.

Quality: each method (`--method dpo`, `--method rejection`) runs 2 rounds of 32 prompts x N = 4 samples
(temperature 1.0: on-policy, the default of TRL's online trainers; top_p 1, 96 tokens), 4 optimizer steps of 8 prompts per round; every round reports
the reward model's mean reward on 32 held-out instructions x 4 answers (the target: it rises from round 0 to
round 2), the answers' length in tokens and the k3 KL estimate to round 0.

Throughput: one round (sample, score, train) against TRL's RLOOTrainer, the TRL trainer nearest to it
at equal N (Online DPO samples 2 per prompt; RLOO takes N): the same student, the same 32 prompts in
the student's chat template, N = 4, the same decoding, 4 optimizer steps of 8 prompts (32 completions),
the same learning rate, and the same reward: a reward function calling the same reward model the
same way (`rank.score_texts` on the Alpaca prompt + the answer). Micro-batches: gpt4llm 4 prompts
(8 sequences, best and worst) x 2 accumulation; TRL 8 completions x 4 (at 16 it peaked at 12 GB).
Generation: gpt4llm's local backend in batches of 32; TRL's generate() on its whole generation batch.
TRL's own per-step extras are its defaults (a reference model for its KL term, beta 0.05). Measured: samples scored per second over the
round's wall time (TRL: `trainer.train()`, one generation batch of 128 and 4 steps; gpt4llm: the
round's sampling + scoring + training seconds from its metrics), and the held-out reward of each
round's model by the same evaluation. Each contender runs in its own process (peak RSS is its own).
Targets (issue 20): the held-out reward rises from round 0 to round 2 for both methods; >= 2x TRL's
samples scored per second with at least equal held-out reward.

`BENCH_ITERATE_SMALL=1`: 8 prompts per round, 8 held out, 32 tokens (a few minutes; a smoke run of the
script, not the figures).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from common import run_child, save

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "data"
VICUNA = SHARED / "vicuna-eval-2023"
USER_ORIENTED = SHARED / "gpt4llm-paper" / "user_oriented_instructions.jsonl"
SMALL = os.environ.get("BENCH_ITERATE_SMALL") == "1"
PROMPTS, HELDOUT, N, MAX_TOKENS = (8, 8, 4, 32) if SMALL else (32, 32, 4, 96)
PER_STEP, ROUNDS, TEMPERATURE = 8, 2, 1.0  # 1.0: on-policy samples, TRL online trainers' default
HELDOUT_SAMPLES = 4  # answers per held-out instruction: 128 answers per held-out reward
BATCH = 32  # the local backend's batch (README: 16-32 is fastest on a CPU); TRL generates its 128 at once
LR = {"dpo": 1e-5, "rejection": 2e-5}
CLI = [sys.executable, "-m", "gpt4llm"]


def comparisons(path: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from bench_dpo import data

    from gpt4llm.templates import ALPACA

    train, held = data()
    rows = [{"user_input": ALPACA.prompt(text), "responses_and_scores": [
        {"response": a, "score": float(s), "source": str(s)} for a, s in answers]}
        for text, answers in [*train.values(), *held.values()]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reward_model(work: Path) -> tuple[Path, dict]:
    out = work / "rm"
    run_child([*CLI, "train", "rm", "-d", str(comparisons(work / "cmp.jsonl")), "-o", str(out), "--layers", "2",
               "--epochs", "3", "--lr", "1e-4", "--batch-size", "8", "--per-device-batch", "4", "--max-length", "384",
               "--eval-split", "0.125", "--warmup-ratio", "0", "-q"])
    return out, json.loads((out / "gpt4llm_rm.json").read_text())["metrics"]


def iterate(work: Path, rm: Path, method: str, rounds: int = ROUNDS) -> tuple[dict, float]:
    out = work / f"iterate-{method}"
    _, rss, _ = run_child([
        *CLI, "train", "iterate", "-i", str(USER_ORIENTED), "-o", str(out), "--method", method, "-r", str(rm),
        "--rounds", str(rounds), "--samples", str(N), "--prompts-per-round", str(PROMPTS), "--heldout", str(HELDOUT), "--heldout-samples", str(HELDOUT_SAMPLES),
        "--max-tokens", str(MAX_TOKENS), "--temperature", str(TEMPERATURE), "--lr", str(LR[method]),
        "--train-batch-size", str(PER_STEP), "--per-device-batch", "4", "--max-length", "384", "--warmup-ratio", "0",
        "--patience", "0", "--save-steps", "100", "--batch-size", str(BATCH), "-q"])
    return json.loads((out / "iterate.json").read_text()), rss


TRL = r'''
import json, sys, time
import datasets, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import RLOOConfig, RLOOTrainer
from gpt4llm.eval.rank import load_reward_model, score_texts
student, rm, prompts_file, out, n, lr, max_tokens, temperature, per_step = sys.argv[1:10]
n, per_step = int(n), int(per_step)
tok = AutoTokenizer.from_pretrained(student)
rows = [json.loads(x) for x in open(prompts_file)]
data = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["instruction"] + ("\n\n" + r["input"] if r["input"] else "")}],
                                     "instruction": r["instruction"], "input": r["input"]} for r in rows])
rm_tok, rm_model, template = load_reward_model(rm)

def reward(prompts, completions, instruction, input, **kw):  # the reward gpt4llm's loop uses, computed the same way
    texts = [template.prompt(i, x) + c[0]["content"] for i, x, c in zip(instruction, input, completions)]
    return score_texts(rm_tok, rm_model, texts, 16, 384)

model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
steps = len(rows) // per_step
args = RLOOConfig(output_dir=out, num_generations=n, max_completion_length=int(max_tokens), temperature=float(temperature),
                  top_p=1.0, top_k=0, learning_rate=float(lr), per_device_train_batch_size=per_step * n // 4,
                  gradient_accumulation_steps=4, steps_per_generation=4 * steps, max_steps=steps, num_train_epochs=1,
                  lr_scheduler_type="cosine", warmup_steps=0.0, bf16=False, fp16=False, gradient_checkpointing=False,
                  use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, seed=42, dataloader_num_workers=0,
                  shuffle_dataset=False)
trainer = RLOOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok)
t0 = time.perf_counter(); trainer.train(); seconds = time.perf_counter() - t0
trainer.model.save_pretrained(out + "/final"); tok.save_pretrained(out + "/final")
print(json.dumps({"samples": len(rows) * n, "seconds": seconds, "steps": trainer.state.global_step}))
'''

SAVE = r'''
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
AutoModelForCausalLM.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
'''

HELD = r'''
import json, sys
from pathlib import Path
from gpt4llm.backends import BackendSettings
from gpt4llm.train import iterate, iterate_rounds as steps
from gpt4llm.train.dpo import choose_template
from gpt4llm.train.iterate_reward import Scorer
model, rm, out, heldout, max_tokens, temperature = sys.argv[1:7]
cfg = iterate.IterateSettings(instructions=sys.argv[7], output_dir=Path(out), model=f"local:{model}", reward_model=Path(rm),
                              heldout=int(heldout))
_, held_qs = iterate.split(cfg)
template, _ = choose_template(f"local:{model}", "auto")
reqs = steps.requests(held_qs, template, int(sys.argv[8]), 1234, float(temperature), 1.0, int(max_tokens), "heldout", False)
rows = steps.Student(model, BackendSettings(), Path(out) / "journal.sqlite", True, Path(out)).answer(reqs, "held out")
scorer = Scorer(Path(rm), None, score_mode="text", backend=None, journal=None, batch_size=16, max_length=384, quiet=True)
got = scorer.score(rows, "held out").rewards
print(json.dumps({"reward": sum(got) / len(got), "n": len(got)}))
'''


def held_out(work: Path, model: str, rm: Path, name: str) -> dict:
    out, _, _ = run_child([sys.executable, "-c", HELD, model, str(rm), str(work / f"held-{name}"), str(HELDOUT),
                           str(MAX_TOKENS), str(TEMPERATURE), str(USER_ORIENTED), str(HELDOUT_SAMPLES)])
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from gpt4llm.backends.local import resolve
    from gpt4llm.train import iterate as it

    work = Path(tempfile.mkdtemp(prefix="bench-iterate-"))
    rm, rm_metrics = reward_model(work)
    runs, rss = {}, {}
    for method in ("dpo", "rejection"):
        runs[method], rss[method] = iterate(work, rm, method)
    # TRL: the same first round's 32 prompts (gpt4llm's draw), from the same student
    cfg = it.IterateSettings(instructions=str(USER_ORIENTED), output_dir=work / "x", heldout=HELDOUT, reward_model=rm)
    train_qs, _ = it.split(cfg)
    prompts = it.round_prompts(train_qs, 1, PROMPTS, cfg.seed)
    pfile = work / "round1_prompts.jsonl"
    pfile.write_text("".join(json.dumps({"instruction": q.instruction, "input": q.input}) + "\n" for q in prompts))
    student = str(work / "student")  # TRL reads the architecture from config.json (the GGUF cache has none)
    run_child([sys.executable, "-c", SAVE, resolve("smollm2-135m-instruct")[0], student])
    trl_out, trl_rss, _ = run_child([sys.executable, "-c", TRL, student, str(rm), str(pfile), str(work / "trl"), str(N),
                                     str(LR["dpo"]), str(MAX_TOKENS), str(TEMPERATURE), str(PER_STEP)])
    trl = json.loads(trl_out.strip().splitlines()[-1])
    trl["held_out"] = held_out(work, str(work / "trl" / "final"), rm, "trl")
    ours = runs["dpo"]["rounds"][1]
    ours_held = held_out(work, ours["model"], rm, "ours")  # the same evaluation as TRL's model gets
    round_s = ours["sample_seconds"] + ours["score_seconds"] + ours["train_seconds"]
    ours_rate, trl_rate = ours["samples"] / round_s, trl["samples"] / trl["seconds"]
    result = {
        "settings": {"student": "local:smollm2-135m-instruct", "prompts_per_round": PROMPTS, "heldout": HELDOUT, "n": N,
                     "max_tokens": MAX_TOKENS, "temperature": TEMPERATURE, "prompts_per_step": PER_STEP,
                     "rounds": ROUNDS, "learning_rate": LR, "heldout_samples": HELDOUT_SAMPLES, "small": SMALL},
        "reward_model": {"backbone": "smollm2-135m-instruct, first 2 layers", "data": "Vicuna-80 x 5 models' answers",
                         "held_out_metrics": rm_metrics},
        "methods": {m: {"rounds": [{k: r.get(k) for k in ("round", "reward", "reward_se", "length", "kl", "kl_k1",
                                                            "samples_scored_per_s", "sample_seconds", "score_seconds",
                                                            "train_seconds", "steps")} for r in run["rounds"]],
                        "reward_rise_round0_to_last": run["rounds"][-1]["reward"] - run["rounds"][0]["reward"],
                        "peak_rss_mb": round(rss[m])} for m, run in runs.items()},
        "one_round_vs_trl_rloo": {
            "gpt4llm_dpo": {"samples": ours["samples"], "seconds": round(round_s, 1),
                            "samples_scored_per_s": round(ours_rate, 3), "held_out_reward": ours_held["reward"],
                            "peak_rss_mb": round(rss["dpo"])},
            "trl_rloo": {"samples": trl["samples"], "seconds": round(trl["seconds"], 1), "steps": trl["steps"],
                         "samples_scored_per_s": round(trl_rate, 3), "held_out_reward": trl["held_out"]["reward"],
                         "peak_rss_mb": round(trl_rss)},
            "speedup": round(ours_rate / trl_rate, 2), "round0_held_out_reward": runs["dpo"]["rounds"][0]["reward"]},
    }
    save("iterate", result)


if __name__ == "__main__":
    main()
