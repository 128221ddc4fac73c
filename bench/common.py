"""Shared bits of the benchmarks: machine facts and saving results as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


def run_child(cmd: list[str]) -> tuple[str, float, float]:
    """Run a contender in its own process: (its stdout, its own peak RSS in MB, wall seconds).
    wait4 gives this child's own rusage, not the max over all children of the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda f, b: b.append(f.read()), args=(f, b)) for f, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError("".join(err)[-3000:])
    return "".join(out), usage.ru_maxrss / 1024, time.perf_counter() - t0
