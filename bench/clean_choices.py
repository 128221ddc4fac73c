"""The measurements behind `gpt4llm clean`'s defaults (README, "Clean the teacher's data"), on real
prompts: which word n-gram and threshold find lightly edited copies of benchmark prompts
(decontamination) and of instructions (near duplicates) without matching unrelated ones. Exact set
arithmetic, no MinHash: this is about the rule, not its approximation.

    .venv/bin/python bench/clean_choices.py     # reads ../shared/data (the benchmarks, AlpacaEval's 805 instructions)
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from gpt4llm.clean.text import words

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "gpt4llm" / "data"
SHARED = ROOT.parent / "shared" / "data"
FILLERS = ["quick", "simple", "detailed", "short", "good", "best", "main", "key", "new", "common"]


def benchmark_prompts() -> list[str]:
    out = [json.loads(l)["text"] for l in open(SHARED / "gpt4llm-paper" / "vicuna_question_80.jsonl")]
    out += [t for l in open(SHARED / "mt-bench-2023" / "mt_bench_question.jsonl") for t in json.loads(l)["turns"]]
    for l in open(SHARED / "gpt4llm-paper" / "user_oriented_instructions.jsonl"):
        r = json.loads(l)
        out.append(r["instruction"] + "\n" + (r["instances"][0].get("input") or ""))
    return out


def seeds() -> list[str]:
    return [r["instruction"] + "\n" + r["input"] for r in map(json.loads, open(PKG / "seed_instructions.jsonl"))]


def alpaca_eval() -> list[dict]:
    return json.loads((SHARED / "alpaca-eval-2" / "annotations_FuseChat-Llama-3.2-1B-Instruct.json").read_text())


def edit(p: str, kind: str, rnd: random.Random) -> str:
    w = p.split()
    if kind == "recased":
        return p.upper()
    if kind == "prefix":
        return "Please " + p
    i = rnd.randrange(len(w))
    if kind == "sub1":
        w[i] = rnd.choice(FILLERS)
    elif kind == "del1" and len(w) > 3:
        del w[i]
    elif kind == "sub2":
        for _ in range(2):
            w[rnd.randrange(len(w))] = rnd.choice(FILLERS)
    elif kind == "swap" and len(w) > 2:
        i = min(i, len(w) - 2)
        w[i], w[i + 1] = w[i + 1], w[i]
    return " ".join(w)


def coverage(train: str, prompt: str, n: int) -> float:
    """open-instruct's score: the share of the prompt's words in n-grams the training text has."""
    tw, pw = words(train), words(prompt)
    if len(pw) < n:
        return 1.0 if tw == pw else 0.0
    grams = {tuple(tw[i:i + n]) for i in range(len(tw) - n + 1)}
    covered = set()
    for i in range(len(pw) - n + 1):
        if tuple(pw[i:i + n]) in grams:
            covered.update(range(i, i + n))
    return len(covered) / len(pw)


def decontamination() -> None:
    prompts = benchmark_prompts()
    ae = alpaca_eval()
    unrelated = [x["instruction"] for x in ae if x["dataset"] in ("oasst", "koala", "helpful_base")] + seeds()
    kinds = ["recased", "sub1", "del1", "sub2"]
    print(f"decontamination: {len(prompts)} benchmark prompts, {len(unrelated)} unrelated real prompts")
    print("| n, threshold | " + " | ".join(kinds) + " | false matches |")
    for n in (5, 6, 8):
        rnd = random.Random(0)
        cells = []
        for k in kinds:
            found = sum(coverage(edit(p, k, rnd), p, n) > 0.5 for p in prompts)
            cells.append(f"{found / len(prompts):.1%}")
        fp = sum(any(coverage(u, p, n) > 0.5 for p in prompts) for u in unrelated)
        print(f"| {n}, 0.5 | " + " | ".join(cells) + f" | {fp} of {len(unrelated)} |")


def near_duplicates() -> None:
    ae = [x["instruction"] for x in alpaca_eval()]
    # AlpacaEval's 15 "I like to host guests ... recipes for X" prompts are one template: not distinct
    bases = [a for a in ae if not a.startswith("I like to host guests")] + seeds()
    kinds = ["prefix", "sub1", "del1", "swap"]

    def shingles(t: str, n: int) -> set:
        w = words(t)
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)} or {tuple(w)}

    def jaccard(a: set, b: set) -> float:
        return len(a & b) / len(a | b)

    print(f"near duplicates: {len(bases)} distinct real prompts, one edited copy of each per kind")
    print("| n-gram, threshold | " + " | ".join(kinds) + " | distinct prompts merged |")
    for n, thr in ((5, 0.7), (3, 0.5), (2, 0.6), (1, 0.7)):
        rnd = random.Random(1)
        sets = [shingles(b, n) for b in bases]
        cells = [f"{sum(jaccard(s, shingles(edit(b, k, rnd), n)) >= thr for b, s in zip(bases, sets)) / len(bases):.1%}"
                 for k in kinds]
        merged = sum(jaccard(sets[i], sets[j]) >= thr for i, j in itertools.combinations(range(len(bases)), 2))
        print(f"| {n}, {thr} | " + " | ".join(cells) + f" | {merged} pairs |")


if __name__ == "__main__":
    decontamination()
    near_duplicates()
