"""Named benchmarks: ``vicuna80``, ``user-oriented-252``, ``unnatural-instructions``.

Each is downloaded from its canonical public location into the cache (``$GPT4LLM_BENCHMARKS``,
else ``~/.cache/gpt4llm/benchmarks``) when online, checked against its SHA-256, or taken from ``--path`` (checked the
same way). ``--benchmark NAME`` then works in ``answer`` and ``eval``. The Unnatural
Instructions file's digest is not pinned by its publisher; it is recorded on first download
and checked on every later use.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from typing import Annotated

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt, Settings


class DownloadSettings(Settings):
    """gpt4llm benchmarks download: a benchmark into the cache (checksum-checked), or installed from --path."""

    name: Annotated[str, Opt(argument=True)]
    """The benchmark's name (gpt4llm benchmarks list)."""
    path: str | None = None
    """Take the file from here instead of the network (checked the same way)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    url: str
    filename: str
    sha256: str | None
    description: str


BENCHMARKS = {b.name: b for b in [
    Benchmark("vicuna80", "https://raw.githubusercontent.com/lm-sys/FastChat/v0.2.3/fastchat/eval/table/question.jsonl",
              "vicuna_question_80.jsonl", "590c39157bc561eadd7f03cad4be18c2b597f93029780af65f86718f39eafa87",
              "Vicuna-80: 80 questions in 9 categories (FastChat, April 2023); the paper's GPT-4-judged set"),
    Benchmark("user-oriented-252", "https://raw.githubusercontent.com/yizhongw/self-instruct/main/human_eval/user_oriented_instructions.jsonl",
              "user_oriented_instructions.jsonl", "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e",
              "User-Oriented-Instructions-252 (Self-Instruct); the paper's human-evaluation set"),
    Benchmark("unnatural-instructions", "https://raw.githubusercontent.com/Instruction-Tuning-with-GPT-4/GPT-4-LLM/main/data/unnatural_instruction_gpt4_data.json",
              "unnatural_instruction_gpt4_data.json", None,
              "Unnatural Instructions, the paper's ~9K evaluation subset with ground truth in 'label' (ROUGE-L)"),
]}


def cache_dir() -> Path:
    """$GPT4LLM_BENCHMARKS, else the benchmarks folder of gpt4llm's cache."""
    import os

    from gpt4llm.backends.local import cache_dir as root

    return Path(os.environ["GPT4LLM_BENCHMARKS"]) if os.environ.get("GPT4LLM_BENCHMARKS") else root() / "benchmarks"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest() -> dict:
    p = cache_dir() / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _expected(b: Benchmark) -> str | None:
    return b.sha256 or _manifest().get(b.name)


def _verify(b: Benchmark, path: Path) -> None:
    want = _expected(b)
    got = sha256(path)
    if want and got != want:
        raise UserError(f"{path}: checksum mismatch for {b.name} (sha256 {got[:16]}..., expected {want[:16]}...); "
                        "the file is not the canonical one")


def _install(b: Benchmark, src: Path) -> Path:
    _verify(b, src)
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{b.filename}.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(d / b.filename)
    if not b.sha256:  # trust on first use, then pin
        m = _manifest()
        m[b.name] = sha256(d / b.filename)
        io.write_json(d / "manifest.json", m)
    return d / b.filename


def download(name: str, path: str | None = None) -> Path:
    """Put a benchmark in the cache, from ``path`` or from its canonical URL."""
    b = get(name)
    if path:
        src = Path(path)
        if src.is_dir():
            src = src / b.filename
        if not src.is_file():
            raise UserError(f"--path {path}: no {b.filename} there")
        return _install(b, src)
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{b.filename}.download"
    try:
        with urllib.request.urlopen(b.url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{b.name}: cannot download {b.url} ({e}); download it by hand and pass --path FILE") from e
    try:
        return _install(b, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def resolve(name_or_file: str) -> str:
    """A question-set argument: an existing file, hf:..., or a benchmark name found in the cache."""
    if name_or_file.startswith("hf:") or Path(name_or_file).exists() or name_or_file not in BENCHMARKS:
        return name_or_file
    b = BENCHMARKS[name_or_file]
    cached = cache_dir() / b.filename
    if not cached.is_file():
        raise UserError(f"benchmark {b.name} is not in the cache; run 'gpt4llm benchmarks download {b.name}' "
                        "(or with --path FILE when offline)")
    _verify(b, cached)
    return str(cached)
