"""openai backend throughput against a fixed-latency server (200 ms per request, 2,000 requests).

Compares, in one run, `gpt4llm generate --concurrency 64` (the real CLI: journal, limiter,
retries, progress bookkeeping) with the ideal 64 / 0.2 s = 320 requests/s and with a plain
`asyncio.gather` + semaphore loop over the `openai` SDK with no journal. Throughput is measured
on the server's clock, from the first request's arrival to the last one's answer, so process
start-up is not counted; the client's CPU time per request is measured whole (start-up included)
from the child process's rusage. Target (issue 3): >= 90% of ideal, >= 0.95x the plain loop.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import free_port, save

N, CONCURRENCY, LATENCY = 2000, 64, 0.2
HERE = Path(__file__).parent

PLAIN = """
import asyncio, json, sys
import openai
from gpt4llm.templates import ALPACA
N, C, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def main():
    client = openai.AsyncOpenAI(api_key="k", base_url=url, max_retries=0)
    sem = asyncio.Semaphore(C)
    async def one(i):
        async with sem:
            r = await client.chat.completions.create(model="m", temperature=1.0, top_p=1.0, max_tokens=512,
                messages=[{"role": "user", "content": ALPACA.prompt(f"Task {i}: describe the number {i}.")}])
            return r.choices[0].message.content
    out = await asyncio.gather(*(one(i) for i in range(N)))
    assert len(out) == N
asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "latency_server.py"), str(port), str(LATENCY)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/stats")
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("latency server did not start")


def measure(cmd: list[str], env: dict) -> dict:
    server, url = start_server()
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        cmd = [url + "/v1" if a == "URL" else a for a in cmd]  # the server's address, known only now
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        arrivals = json.loads(urllib.request.urlopen(url + "/stats").read())
    finally:
        server.terminate()
        server.wait()
    span = max(arrivals) + LATENCY - min(arrivals)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"requests": len(arrivals), "span_s": round(span, 3), "requests_per_s": round(len(arrivals) / span, 1),
            "wall_s_with_startup": round(wall, 2), "client_cpu_s": round(cpu, 2),
            "client_cpu_ms_per_request": round(1000 * cpu / len(arrivals), 3)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gpt4llm-bench-tput-"))
    src = work / "in.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"Task {i}: describe the number {i}."}) + "\n" for i in range(N)))
    env = {**os.environ, "OPENAI_API_KEY": "k"}
    gpt4llm = measure([sys.executable, "-m", "gpt4llm", "generate", "-i", str(src), "-o", str(work / "out.jsonl"),
                       "--teacher", "openai:m", "--concurrency", str(CONCURRENCY), "-q", "--base-url", "URL"], env)
    plain = measure([sys.executable, "-c", PLAIN, str(N), str(CONCURRENCY), "URL"], env)
    ideal = CONCURRENCY / LATENCY
    save("openai_throughput", {
        "requests": N, "concurrency": CONCURRENCY, "latency_s": LATENCY, "ideal_requests_per_s": ideal,
        "gpt4llm": gpt4llm, "plain_gather_semaphore": plain,
        "gpt4llm_fraction_of_ideal": round(gpt4llm["requests_per_s"] / ideal, 3),
        "gpt4llm_vs_plain": round(gpt4llm["requests_per_s"] / plain["requests_per_s"], 3),
        "targets": {"fraction_of_ideal": 0.9, "vs_plain": 0.95},
        "meets_target": gpt4llm["requests_per_s"] / ideal >= 0.9 and gpt4llm["requests_per_s"] / plain["requests_per_s"] >= 0.95,
    })


if __name__ == "__main__":
    main()
