"""Named benchmarks and datasets: ``vicuna80``, ``user-oriented-252``, ``unnatural-instructions``, and
the paper's released data ``alpaca-gpt4-en``, ``alpaca-gpt4-zh``, ``comparison-gpt4-v2``.

Each is downloaded from its canonical public location into the cache (``$GPT4LLM_BENCHMARKS``,
else ``~/.cache/gpt4llm/benchmarks``), or taken from ``--path``, and checked: the paper's files
against their git blob ids (the sha1 of ``"blob <size>\0"`` + the bytes: the id GitHub shows, so the
released file exactly), the others against a pinned SHA-256. A mismatch is refused unless
``--no-verify``. The installed file's SHA-256 is recorded, and every later use checks that the
cached file has not changed. ``--benchmark NAME`` / ``--data NAME`` then work wherever a question
set or a data file is read.
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
    """gpt4llm benchmarks download: a benchmark or dataset into the cache (checked), or installed from --path."""

    name: Annotated[str, Opt(argument=True)]
    """The benchmark's or dataset's name (gpt4llm benchmarks list)."""
    path: str | None = None
    """Take the file from here instead of the network (checked the same way)."""
    no_verify: bool = False
    """Install a file that is not the canonical one (a subset, an edited copy); it is recorded as unverified."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    url: str
    filename: str
    sha256: str | None
    description: str
    git_blob: str | None = None
    """The released file's git blob id (sha1 of "blob <size>\0" + bytes)."""
    kind: str = "benchmark"


PAPER_DATA = "https://raw.githubusercontent.com/Instruction-Tuning-with-GPT-4/GPT-4-LLM/main/data/"
FASTCHAT_JUDGE = "https://raw.githubusercontent.com/lm-sys/FastChat/0e6d3e4b/fastchat/llm_judge/data/"


BENCHMARKS = {b.name: b for b in [
    Benchmark("vicuna80", "https://raw.githubusercontent.com/lm-sys/FastChat/v0.2.3/fastchat/eval/table/question.jsonl",
              "vicuna_question_80.jsonl", "590c39157bc561eadd7f03cad4be18c2b597f93029780af65f86718f39eafa87",
              "Vicuna-80: 80 questions in 9 categories (FastChat, April 2023); the paper's GPT-4-judged set"),
    Benchmark("user-oriented-252", "https://raw.githubusercontent.com/yizhongw/self-instruct/main/human_eval/user_oriented_instructions.jsonl",
              "user_oriented_instructions.jsonl", "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e",
              "User-Oriented-Instructions-252 (Self-Instruct); the paper's human-evaluation set"),
    Benchmark("unnatural-instructions", PAPER_DATA + "unnatural_instruction_gpt4_data.json",
              "unnatural_instruction_gpt4_data.json", None,
              "Unnatural Instructions, the paper's ~9K evaluation subset with ground truth in 'label' (ROUGE-L)",
              git_blob="b2ff691552defddbbe5ca4a1be792c26f852d917"),
    Benchmark("alpaca-gpt4-en", PAPER_DATA + "alpaca_gpt4_data.json", "alpaca_gpt4_data.json", None,
              "the paper's 52,002 GPT-4 answers to Alpaca's instructions (train sft --data)",
              git_blob="25508714b7879a1e5a6764ba7f979a980f549f1a", kind="dataset"),
    Benchmark("alpaca-gpt4-zh", PAPER_DATA + "alpaca_gpt4_data_zh.json", "alpaca_gpt4_data_zh.json", None,
              "the paper's 48,818 GPT-4 answers in Chinese (train sft --data)",
              git_blob="af092742e9bc3b83fa6feb13203b793aafc9dffc", kind="dataset"),
    Benchmark("comparison-gpt4-v2", PAPER_DATA + "comparison_data_v2.json", "comparison_data_v2.json", None,
              "the paper's comparison data: GPT-4's 1-10 scores of three models' answers (train rm / train dpo --data)",
              git_blob="decb04ca4c911d821a67364dfe058c4d383f241e", kind="dataset"),
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


def git_blob_id(path: Path) -> str:
    """Git's id of a file: sha1 of "blob <size>\\0" followed by its bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest() -> dict:
    p = cache_dir() / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _verify(b: Benchmark, path: Path) -> None:
    """The file is the canonical one: its git blob id, else its pinned SHA-256."""
    want, got, what = (b.git_blob, git_blob_id(path), "git blob") if b.git_blob else (b.sha256, None, "sha256")
    if want is None:
        return  # not pinned by its publisher: trusted on first use, then the cache is checked against it
    got = got or sha256(path)
    if got != want:
        raise UserError(f"{path}: checksum mismatch for {b.name} ({what} {got[:16]}..., expected {want[:16]}...): "
                        "not the canonical file; pass --no-verify to install it anyway")


def _install(b: Benchmark, src: Path, verify: bool = True) -> Path:
    if verify:
        _verify(b, src)
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{b.filename}.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(d / b.filename)
    m = _manifest()
    m[b.name] = sha256(d / b.filename)  # every later use checks that the cached file has not changed
    unverified = set(m.get("unverified", [])) - {b.name}
    m["unverified"] = sorted(unverified | ({b.name} if not verify else set()))
    io.write_json(d / "manifest.json", m)
    return d / b.filename


def download(name: str, path: str | None = None, verify: bool = True) -> Path:
    """Put a benchmark or dataset in the cache, from ``path`` or from its canonical URL."""
    b = get(name)
    if path:
        src = Path(path)
        if src.is_dir():
            src = src / b.filename
        if not src.is_file():
            raise UserError(f"--path {path}: no {b.filename} there")
        return _install(b, src, verify)
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
        return _install(b, tmp, verify)
    finally:
        tmp.unlink(missing_ok=True)


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark or dataset {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def resolve(name_or_file: str) -> str:
    """A question set or data argument: an existing file, hf:..., or a name found in the cache."""
    if name_or_file.startswith("hf:") or Path(name_or_file).exists() or name_or_file not in BENCHMARKS:
        return name_or_file
    b = BENCHMARKS[name_or_file]
    cached = cache_dir() / b.filename
    if not cached.is_file():
        raise UserError(f"{b.kind} {b.name} is not in the cache; run 'gpt4llm benchmarks download {b.name}' "
                        "(or with --path FILE when offline)")
    recorded = _manifest().get(b.name)
    if recorded is not None:
        if sha256(cached) != recorded:
            raise UserError(f"{cached}: changed since it was installed; run 'gpt4llm benchmarks download {b.name}' again")
    else:
        _verify(b, cached)
    return str(cached)
