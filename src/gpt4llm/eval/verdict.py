"""Vicuna's reviewer protocol (PAPER.md section 5): prompts, verdict parsing, and the summary.

FastChat read the two scores from the review's first line (commas to spaces, split, exactly two
floats, else [-1, -1], silently). Here the first line may also be "(8, 9)" (the math prompt asks
for a Python tuple), "8.5 9", "Assistant 1: 8 Assistant 2: 9" or "**8** **9**"; anything else
is a parse failure that the judge stage re-asks and then reports, never drops.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

import numpy as np

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
PROMPT_OF_CATEGORY = {"coding": 2, "math": 3}  # else 1 (FastChat's reviewer.jsonl)


@lru_cache(maxsize=1)
def prompts() -> dict[int, dict]:
    text = resources.files("gpt4llm.prompts").joinpath("vicuna_reviewer_prompt.jsonl").read_text(encoding="utf-8")
    return {d["prompt_id"]: d for d in map(json.loads, text.splitlines()) if d}


@lru_cache(maxsize=1)
def reviewers() -> dict[int, dict]:
    text = resources.files("gpt4llm.prompts").joinpath("vicuna_reviewer.jsonl").read_text(encoding="utf-8")
    return {d["prompt_id"]: d for d in map(json.loads, text.splitlines()) if d}


def review_messages(category: str | None, question: str, answer_1: str, answer_2: str) -> tuple[list[dict], int]:
    """(messages, prompt_id): the system prompt, then the category's template filled in."""
    pid = PROMPT_OF_CATEGORY.get(category or "", 1)
    p = prompts()[pid]
    user = p["prompt_template"].format(question=question, answer_1=answer_1, answer_2=answer_2, **p["defaults"])
    return [{"role": "system", "content": p["system_prompt"]}, {"role": "user", "content": user}], pid


LABEL = re.compile(r"assistant\s*[12]\s*(?:'s)?\s*(?:score)?\s*[:=\-]?", re.I)
NUM = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def parse_verdict(text: str) -> tuple[list[float] | None, str]:
    """([s1, s2], "ok") or (None, reason), from the first non-empty line."""
    line = next((x.strip() for x in (text or "").splitlines() if x.strip()), "")
    if not line:
        return None, "empty output"
    clean = LABEL.sub(" ", re.sub(r"[*_`#>]", " ", line))
    clean = re.sub(r"/\s*10(?:\.0+)?(?![\d.])", " ", clean)  # "8/10 9/10"
    nums = [float(x) for x in NUM.findall(clean)]
    if len(nums) != 2:
        return None, f"expected two scores in the first line, found {len(nums)}: {line[:80]!r}"
    if not all(1 <= x <= 10 for x in nums):
        return None, f"scores outside 1-10: {line[:80]!r}"
    return nums, "ok"


def outcome(model: float, ref: float) -> str:
    return "win" if model > ref else "loss" if model < ref else "tie"


def summarize(per_question: list[dict], n_boot: int = 10_000, seed: int = 0) -> dict:
    """The paper's metric and more, from per-question rows ``{question_id, category, model, reference,
    orders: [(model, ref) per order] }``; rows with ``model`` None are parse failures."""
    ok = [r for r in per_question if r["model"] is not None]
    m = np.array([r["model"] for r in ok], dtype=float)
    ref = np.array([r["reference"] for r in ok], dtype=float)
    out = {"questions": len(per_question), "scored": len(ok), "parse_failures": len(per_question) - len(ok),
           "model_score_sum": float(m.sum()), "reference_score_sum": float(ref.sum()),
           "ratio_percent": float(100 * m.sum() / ref.sum()) if ref.sum() else None}
    counts = {"win": 0, "tie": 0, "loss": 0}
    for a, b in zip(m, ref):
        counts[outcome(a, b)] += 1
    out.update({"wins": counts["win"], "ties": counts["tie"], "losses": counts["loss"]})
    both = [r for r in ok if len(r.get("orders", [])) == 2]
    flips = sum(1 for r in both if outcome(*r["orders"][0]) != outcome(*r["orders"][1]))
    out["flip_rate"] = flips / len(both) if both else None
    out["flips"] = flips
    if len(ok) > 1 and ref.sum():
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(ok), size=(n_boot, len(ok)))
        ratios = 100 * m[idx].sum(1) / ref[idx].sum(1)
        out["ratio_ci95"] = [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
    else:
        out["ratio_ci95"] = None
    cats: dict[str, list] = {}
    for r in ok:
        cats.setdefault(r.get("category") or "unknown", []).append(r)
    out["per_category"] = {c: {"n": len(rs), "model_score_sum": sum(x["model"] for x in rs),
                               "reference_score_sum": sum(x["reference"] for x in rs),
                               "ratio_percent": 100 * sum(x["model"] for x in rs) / sum(x["reference"] for x in rs)
                               if sum(x["reference"] for x in rs) else None}
                           for c, rs in sorted(cats.items())}
    return out
