"""Helpers shared by the tests: paths, the real CLI in a subprocess, JSONL files, local servers."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: str | None = None) -> subprocess.CompletedProcess:
    """The real ``gpt4llm`` command in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gpt4llm", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path, rows: list) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url: str, tries: int = 600, pause: float = 0.1) -> None:
    """Until ``url`` answers (a server just started), at most ``tries`` x ``pause`` seconds."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(url)
            return
        except OSError:
            time.sleep(pause)
    raise TimeoutError(f"{url} did not answer")
