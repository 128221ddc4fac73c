"""Shared bits of the benchmarks: machine facts and saving results as JSON."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    """A free loopback port for a server a benchmark starts."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    The peak is the child's VmHWM (/proc/PID/status), read every 50 ms while it runs: wait4's
    ru_maxrss would start from the benchmark process's own RSS (Linux carries the parent's
    high-water mark over fork/vfork and exec), so after a benchmark that loaded a model in-process
    every contender would report at least that."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:"))
                peak[0] = max(peak[0], kb)
            except (OSError, StopIteration, ValueError):
                pass
            done.wait(0.05)

    threads = [threading.Thread(target=lambda f, b: b.append(f.read()), args=(f, b)) for f, b in
               ((proc.stdout, out), (proc.stderr, err))] + [threading.Thread(target=watch)]
    for t in threads:
        t.start()
    proc.wait()
    done.set()
    for t in threads:
        t.join()
    if proc.returncode != 0:
        raise RuntimeError("".join(err)[-3000:])
    return "".join(out), peak[0] / 1024, time.perf_counter() - t0
