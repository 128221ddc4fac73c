"""`gpt4llm serve` with the embedded model: completion tokens/s with 1 client vs 8 concurrent
clients, through the official openai client over HTTP (same 16 prompts, greedy, 48 tokens).
Target (issue 3): >= 3x from batching."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

from common import free_port, save

import openai

from gpt4llm.generate import load_instructions

N_PROMPTS, MAX_TOKENS = 16, 48


async def run(base: str, prompts: list[str], clients: int) -> dict:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="none", timeout=600)
    queue = list(prompts)
    tokens = 0

    async def worker():
        nonlocal tokens
        while queue:
            p = queue.pop(0)
            r = await client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=MAX_TOKENS, temperature=0,
                                                     messages=[{"role": "user", "content": p}])
            tokens += r.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    s = time.perf_counter() - t0
    return {"clients": clients, "completion_tokens": tokens, "seconds": round(s, 2), "tokens_per_s": round(tokens / s, 1)}


def main() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpt4llm", "serve", "--port", str(port), "--max-wait-ms", "20"],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health")
                break
            except OSError:
                time.sleep(0.1)
        prompts = [s.instruction for s in load_instructions("seeds")[:N_PROMPTS]]
        asyncio.run(run(base, prompts[:2], 1))  # warm-up: the model loads on the first request
        one = asyncio.run(run(base, prompts, 1))
        eight = asyncio.run(run(base, prompts, 8))
        stats = json.loads(urllib.request.urlopen(base + "/health").read())
    finally:
        proc.terminate()
        proc.wait()
    speedup = eight["tokens_per_s"] / one["tokens_per_s"]
    save("serve_batching", {"model": "local:smollm2-135m-instruct", "prompts": N_PROMPTS, "max_tokens": MAX_TOKENS,
                            "decoding": "greedy", "rows": [one, eight], "server_batches": stats["batches"],
                            "speedup_8_vs_1": round(speedup, 2), "target": 3.0, "meets_target": speedup >= 3.0})


if __name__ == "__main__":
    main()
