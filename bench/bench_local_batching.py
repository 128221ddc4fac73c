"""Local backend: batched vs unbatched generation on the embedded SmolLM2 (CPU).

Same 32 prompts (the first 32 bundled seeds), same max_tokens, greedy decoding so every batch
size does the same work; tokens/s = completion tokens produced / wall time of the generation
(model load excluded). Target (issue 2): best batch size >= 5x batch 1.
"""

from __future__ import annotations

import asyncio
import sys
import time

from common import save

from gpt4llm.backends.base import GenParams, RunContext
from gpt4llm.backends.local import LocalBackend, load_model
from gpt4llm.generate import build_requests, load_instructions

MAX_TOKENS = 64
N_PROMPTS = 32


async def measure(batch_size: int) -> dict:
    backend = LocalBackend("smollm2-135m-instruct", batch_size=batch_size)
    requests = build_requests(load_instructions("seeds")[:N_PROMPTS], GenParams(temperature=0.0, max_tokens=MAX_TOKENS))
    t0 = time.perf_counter()
    tokens = 0
    async for _, res in backend.run(requests, RunContext()):
        tokens += res.completion_tokens
    seconds = time.perf_counter() - t0
    return {"batch_size": batch_size, "completion_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def main(batch_sizes=(1, 8, 16, 32)) -> None:
    load_model("smollm2-135m-instruct")  # load once, outside the timing
    rows = [asyncio.run(measure(bs)) for bs in batch_sizes]
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup_vs_batch_1"] = round(r["tokens_per_s"] / base, 2)
    best = max(rows, key=lambda r: r["tokens_per_s"])
    save("local_batching", {"model": "local:smollm2-135m-instruct", "prompts": N_PROMPTS, "max_tokens": MAX_TOKENS,
                            "decoding": "greedy", "rows": rows, "best_speedup": best["speedup_vs_batch_1"],
                            "target_speedup": 5.0, "meets_target": best["speedup_vs_batch_1"] >= 5.0})


if __name__ == "__main__":
    main(tuple(int(x) for x in sys.argv[1:]) or (1, 8, 16, 32))
