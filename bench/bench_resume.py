"""Resume of a fully journaled 52,002-record run: wall time of the real CLI and model calls made.

The journal is filled with ok entries under exactly the keys `generate` computes, then
`gpt4llm generate --teacher openai:gpt-4` runs against a base URL where nothing listens: a
single model call would fail the run, so "0 made" is checked, not assumed. Target (issue 2):
at most 10 s, zero calls.
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

from common import save

from gpt4llm.backends import create_backend
from gpt4llm.backends.base import GenParams
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import assign_keys
from gpt4llm.generate import build_requests, journal_path, load_instructions

N = 52_002  # the Alpaca instructions
WORDS = "write explain list describe summarize classify translate rewrite compute find the a of data story poem".split()


def synthetic(n: int) -> list[dict]:
    rnd = random.Random(0)
    rows = []
    for i in range(n):
        instr = f"{i}: " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 25)))
        rows.append({"instruction": instr, "input": " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 30))) if i % 3 == 0 else ""})
    return rows


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gpt4llm-bench-resume-"))
    src, out = work / "alpaca.json", work / "out.jsonl"
    src.write_text(json.dumps(synthetic(N)))
    env = {**os.environ, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    os.environ.update(env)
    backend = create_backend("openai:gpt-4")
    requests = build_requests(load_instructions(str(src)), GenParams())
    assign_keys(backend, requests)
    answer = "word " * 250  # a typical GPT-4 answer length
    with Journal(journal_path(out)) as j:
        j.db.execute("BEGIN")
        for r in requests:
            j.record(r.key, backend.kind, backend.model, r.payload(), text=answer, finish_reason="stop",
                     prompt_tokens=60, completion_tokens=250, latency_s=5.0)
        j.db.execute("COMMIT")
    cmd = [sys.executable, "-m", "gpt4llm", "generate", "-i", str(src), "-o", str(out), "--teacher", "openai:gpt-4", "-q"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"resume run failed: {r.stderr}")
    written = sum(1 for _ in out.open())
    calls = int(r.stdout.split("model calls: ")[1].split(" made")[0])
    save("resume_52k", {"records": N, "written": written, "model_calls": calls, "seconds": round(seconds, 2),
                        "target_seconds": 10.0, "meets_target": seconds <= 10.0 and calls == 0,
                        "command": " ".join(["gpt4llm"] + cmd[3:])})


if __name__ == "__main__":
    main()
