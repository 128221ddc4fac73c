"""The decontamination indexes gpt4llm ships instead of the benchmarks' files.

One ``gpt4llm/data/decontam/<name>.npz`` per small named benchmark (Vicuna-80, vicuna-bench,
MT-Bench, User-Oriented-252, AlpacaEval's 805 instructions): exactly what ``decontam.Index`` takes
from a benchmark, and no text:

- ``ids``: each prompt's question id (MT-Bench's second turns ``<id>#2``);
- ``sizes``: its words (int32);
- ``hashes``: its word n-gram hashes in order, the prompts end to end (uint64; one hash of all its
  words for a prompt under n words), as ``text.ngram_hashes`` computes them from BLAKE2b word hashes;
- ``meta``: JSON: the name, n, the file it was built from (name, git blob id and SHA-256; for
  AlpacaEval, whose file is not pinned, what it was built from), and the format.

``decontam.packaged`` reads them (refusing an index built from another file than the one pinned
now), so ``--against vicuna80`` gives the same matches offline as with the file in the benchmark
cache (a test checks it on every shipped index). A maintainer rebuilds one from the canonical file,
checked against the checksum ``gpt4llm.eval.benchmarks`` pins:

    python -m gpt4llm.clean.index --name vicuna80 --from ../shared/data/vicuna-eval-2023/question.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gpt4llm.clean.decontam import FORMAT, Benchmark, folder, hashed, prompts
from gpt4llm.errors import UserError


def default_n() -> int:
    """clean's default n (6): the n the shipped indexes are built for."""
    from gpt4llm.clean import CleanSettings

    return CleanSettings.model_fields["contamination_ngram"].default


def build(name: str, path: str, n: int, built_from: str | None = None) -> tuple[Benchmark, dict]:
    """The index of benchmark ``name`` from its file, checked against the pinned checksum."""
    from gpt4llm.eval.benchmarks import get, git_blob_id, sha256

    b = get(name)
    if b.kind != "benchmark":
        raise UserError(f"--name {name}: a training dataset, not a benchmark")
    f = Path(path)
    if not f.is_file():
        raise UserError(f"--from {path}: no such file")
    meta = {"format": FORMAT, "name": name, "n": n, "file": f.name, "git_blob": git_blob_id(f), "sha256": sha256(f),
            "pinned": bool(b.git_blob or b.sha256)}
    what, want = ("git_blob", b.git_blob) if b.git_blob else ("sha256", b.sha256)
    if want and meta[what] != want:  # a pinned benchmark: only its canonical file
        raise UserError(f"--from {path}: not the canonical {name} file ({what} {meta[what][:16]}..., gpt4llm pins "
                        f"{want[:16]}...); build the index from the file gpt4llm.eval.benchmarks pins")
    if built_from:
        meta["built_from"] = built_from
    bench = hashed(name, str(f), *prompts(str(f)), n)
    meta["prompts"] = len(bench.ids)
    return bench, meta


def save(bench: Benchmark, meta: dict, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, ids=np.array(bench.ids, dtype=str), sizes=bench.sizes.astype(np.int32),
                            hashes=bench.hashes.astype(np.uint64), meta=np.array(json.dumps(meta, sort_keys=True)))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    from gpt4llm.errors import run_main

    n = default_n()
    ap = argparse.ArgumentParser(prog="python -m gpt4llm.clean.index", description=(
        "Build the packaged decontamination index of a named benchmark from its canonical file (no text is kept: "
        "ids, word counts and word n-gram hashes)."))
    ap.add_argument("--name", required=True, help="the benchmark (gpt4llm benchmarks list)")
    ap.add_argument("--from", dest="path", required=True, help="its question file, checked against the pinned checksum")
    ap.add_argument("--n", type=int, default=n, help=f"word n-grams (default {n}, clean's default)")
    ap.add_argument("--built-from", help="what the file is, when it is not the benchmark's own (recorded in the index)")
    ap.add_argument("-o", "--output", type=Path, help="default gpt4llm/data/decontam/NAME.npz")
    a = ap.parse_args(argv)

    def run() -> None:
        if not 1 <= a.n <= 64:
            raise UserError(f"--n {a.n}: between 1 and 64")
        bench, meta = build(a.name, a.path, a.n, a.built_from)
        out = save(bench, meta, a.output or folder() / f"{a.name}.npz")
        print(f"{out}: {meta['prompts']} prompts, {len(bench.hashes)} {a.n}-gram hashes, from {meta['file']} "
              f"(git blob {meta['git_blob'][:12]}, sha256 {meta['sha256'][:12]})")

    return run_main(run, False)


if __name__ == "__main__":
    sys.exit(main())
