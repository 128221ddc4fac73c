"""Named benchmarks and datasets: ``vicuna80``, ``user-oriented-252``, ``unnatural-instructions``,
``mt-bench`` and ``vicuna-bench`` (FastChat llm_judge's, each with GPT-4's reference answers),
``alpaca-eval`` (AlpacaEval's 805 instructions), and
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
    references: tuple[str, str, str] | None = None
    """(url, filename, git blob id) of the reference answers that come with the questions."""


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
    Benchmark("mt-bench", FASTCHAT_JUDGE + "mt_bench/question.jsonl", "mt_bench_question.jsonl", None,
              "MT-Bench: 80 two-turn questions in 8 categories (FastChat llm_judge), with GPT-4's reference answers",
              git_blob="464e2c22f7a021a0f9a584d232338a9a17c40066",
              references=(FASTCHAT_JUDGE + "mt_bench/reference_answer/gpt-4.jsonl",
                          "mt_bench_reference_answer_gpt-4.jsonl", "8b66387a3129cbb117178fe515491df553dd52df")),
    Benchmark("vicuna-bench", FASTCHAT_JUDGE + "vicuna_bench/question.jsonl", "vicuna_bench_question.jsonl", None,
              "Vicuna-80 in llm_judge's format (80 questions, one turn), with GPT-4's reference answers for coding and math",
              git_blob="223642384936578e66cf127936251dda6a51d595",
              references=(FASTCHAT_JUDGE + "vicuna_bench/reference_answer/gpt-4.jsonl",
                          "vicuna_bench_reference_answer_gpt-4.jsonl", "f3c8368d058cd01912c41b9ca9e67ce82867bdf3")),
    # AlpacaEval's evaluation set (helpful_base, koala, oasst, selfinstruct, vicuna), read by its
    # `instruction` fields. Not pinned: the Hugging Face hub was not reachable to take its checksum,
    # so the first file installed is trusted and the cache is checked against it from then on.
    Benchmark("alpaca-eval", "https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/main/alpaca_eval.json",
              "alpaca_eval.json", None,
              "AlpacaEval: 805 instructions (Vicuna-80 and User-Oriented-252 among them; tatsu-lab/alpaca_eval)"),
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


def _reference_part(b: Benchmark) -> Benchmark:
    """The reference answers of ``b`` as a file of their own (checked, cached and recorded alike)."""
    url, filename, blob = b.references
    return Benchmark(f"{b.name}:references", url, filename, None, f"{b.name}'s reference answers", git_blob=blob)


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
    """Put a benchmark or dataset in the cache, from ``path`` or from its canonical URL (a
    benchmark with reference answers: both files; ``path`` a folder holding both, or the question
    file with the references beside it)."""
    b = get(name)
    parts = [b] + ([_reference_part(b)] if b.references else [])
    if path:
        src = Path(path)
        folder = src if src.is_dir() else src.parent
        files = [src / b.filename if src.is_dir() else src] + [folder / p.filename for p in parts[1:]]
        for part, f in zip(parts, files):
            if not f.is_file():
                raise UserError(f"--path {path}: no {part.filename} there")
        return [_install(part, f, verify) for part, f in zip(parts, files)][0]
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for part in parts:
        tmp = d / f".{part.filename}.download"
        try:
            with urllib.request.urlopen(part.url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UserError(f"{b.name}: cannot download {part.url} ({e}); download it by hand and pass --path "
                            "FILE") from e
        try:
            out.append(_install(part, tmp, verify))
        finally:
            tmp.unlink(missing_ok=True)
    return out[0]


def references_of(name_or_file: str) -> str | None:
    """The reference answers that come with a question set: a named benchmark's (from the cache,
    checked like its questions), or, for a question file in FastChat's layout
    (``.../mt_bench/question.jsonl``), ``reference_answer/gpt-4.jsonl`` beside it."""
    if name_or_file in BENCHMARKS and not Path(name_or_file).exists():
        b = BENCHMARKS[name_or_file]
        if not b.references:
            return None
        part = _reference_part(b)
        cached = cache_dir() / part.filename
        if not cached.is_file():
            raise UserError(f"{b.name}'s reference answers are not in the cache; run 'gpt4llm benchmarks download "
                            f"{b.name}' again")
        _check_cached(part, cached)
        return str(cached)
    beside = Path(name_or_file).parent / "reference_answer" / "gpt-4.jsonl"
    return str(beside) if beside.is_file() else None


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
    _check_cached(b, cached)
    return str(cached)


def _check_cached(b: Benchmark, cached: Path) -> None:
    recorded = _manifest().get(b.name)
    if recorded is not None:
        if sha256(cached) != recorded:
            name = b.name.split(":")[0]
            raise UserError(f"{cached}: changed since it was installed; run 'gpt4llm benchmarks download {name}' again")
    else:
        _verify(b, cached)
