"""Decontamination: training records whose instruction (and input) overlap a benchmark's prompts.

The rule is open-instruct's (allenai/open-instruct, ``decontamination/search.py``, ``ngram_match``),
the one Tulu 3 decontaminated with: a benchmark prompt's word is matched by a training record when it
lies in a word n-gram of the prompt that the record also contains; the match score is the share of
the prompt's words matched by that one record; the record is contaminated when the score is above
the threshold. Tulu 3 used 8-grams and 0.5. Vicuna-80's questions are short (median 17 words, some
8), so here the default is 6-grams and 0.5: on lightly edited copies of Vicuna-80, MT-Bench and
User-Oriented-252 prompts (one word replaced), 8-grams find 86% and 6-grams 94%, with no false match
among 513 unrelated real prompts (AlpacaEval's OASST, Koala and Anthropic subsets and the bundled seeds);
5-grams match "how can i improve my ..." to an unrelated Wi-Fi question (README, "gpt4llm clean").
A prompt shorter than n words matches only a record with the same words.

Linear time: the benchmarks' n-grams go into one sorted array; each record's n-grams are looked up
with numpy (``searchsorted``), and only the few records with a hit are scored word by word.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from gpt4llm.clean.text import WordHasher, ngram_hashes, words
from gpt4llm.errors import UserError

# Named benchmarks small enough to ship (questions only, unmodified, checked against the checksums
# of gpt4llm.eval.benchmarks): Vicuna-80 and MT-Bench (FastChat, Apache-2.0), User-Oriented-252
# (Self-Instruct, Apache-2.0). The others are read from the benchmark cache (gpt4llm benchmarks download).
PACKAGED = ("vicuna80", "vicuna-bench", "mt-bench", "user-oriented-252")


@dataclass
class Benchmark:
    name: str
    source: str
    """Where the prompts were read: the file."""
    ids: list[str]
    texts: list[str]


def _packaged(name: str) -> Path | None:
    from gpt4llm.eval.benchmarks import BENCHMARKS, git_blob_id, sha256

    if name not in PACKAGED:
        return None
    b = BENCHMARKS[name]
    p = Path(str(resources.files("gpt4llm.data").joinpath(b.filename)))
    if not p.is_file():
        return None
    ok = git_blob_id(p) == b.git_blob if b.git_blob else sha256(p) == b.sha256
    if not ok:
        raise UserError(f"{p}: the packaged copy of {name} does not match its checksum; reinstall gpt4llm")
    return p


def resolve(spec: str) -> tuple[str, str]:
    """(name, file) of a --against value: a named benchmark (the cache first, else the packaged
    copy), or a question file (named by its file name)."""
    from gpt4llm.eval.benchmarks import BENCHMARKS, cache_dir, resolve as cached

    if spec in BENCHMARKS and not Path(spec).exists():
        b = BENCHMARKS[spec]
        if b.kind != "benchmark":
            raise UserError(f"--against {spec}: a training dataset, not a benchmark; known benchmarks: "
                            f"{', '.join(known())}")
        if (cache_dir() / b.filename).is_file():
            return spec, cached(spec)
        p = _packaged(spec)
        if p is None:
            raise UserError(f"--against {spec}: not available offline (not in the benchmark cache); run 'gpt4llm "
                            f"benchmarks download {spec}' (or with --path FILE), or pass the file: --against FILE")
        return spec, str(p)
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"--against {spec}: neither a known benchmark ({', '.join(known())}) nor a file")
    return p.stem, str(p)


def known() -> list[str]:
    from gpt4llm.eval.benchmarks import BENCHMARKS

    return [n for n, b in BENCHMARKS.items() if b.kind == "benchmark"]


def load(spec: str) -> Benchmark:
    """A benchmark's prompts: each question's instruction and input; every turn of a multi-turn
    question (MT-Bench) as a prompt of its own, ``<id>#2`` for the second."""
    from gpt4llm.eval.questions import load_questions

    name, path = resolve(spec)
    ids, texts = [], []
    for q in load_questions(path):
        turns = q.turns or [q.instruction + ("\n" + q.input if q.input else "")]
        for k, t in enumerate(turns, 1):
            ids.append(str(q.question_id) if k == 1 else f"{q.question_id}#{k}")
            texts.append(t)
    return Benchmark(name, path, ids, texts)


@dataclass
class Match:
    benchmark: str
    id: str
    score: float


@dataclass
class Index:
    """The n-grams of every prompt of every benchmark, with where each one lies."""

    benchmarks: list[Benchmark]
    n: int
    threshold: float
    hasher: WordHasher
    keys: np.ndarray = field(init=False)
    where: dict[int, list[tuple[int, int]]] = field(init=False)
    prompts: list[tuple[int, int, int]] = field(init=False)
    """(benchmark index, prompt index, words) per prompt."""

    def __post_init__(self) -> None:
        self.where = defaultdict(list)
        self.prompts = []
        for bi, b in enumerate(self.benchmarks):
            for pi, text in enumerate(b.texts):
                hs = np.array(self.hasher(words(text)), dtype=np.uint64)
                g = len(self.prompts)
                self.prompts.append((bi, pi, len(hs)))
                if len(hs) == 0:
                    continue
                h, _ = ngram_hashes(hs, np.array([len(hs)]), self.n)
                for pos, x in enumerate(h.tolist()):
                    self.where[x].append((g, pos))
        self.keys = np.array(sorted(self.where), dtype=np.uint64)

    def match(self, flat: np.ndarray, lengths: np.ndarray) -> dict[int, list[Match]]:
        """{record index (within these records): its matches above the threshold, best first}."""
        out: dict[int, list[Match]] = {}
        if len(self.keys) == 0 or len(lengths) == 0:
            return out
        h, owner = ngram_hashes(flat, lengths, self.n)
        pos = np.searchsorted(self.keys, h)
        hit = (pos < len(self.keys)) & (self.keys[np.minimum(pos, len(self.keys) - 1)] == h)
        hits_by_record: dict[int, list[int]] = defaultdict(list)
        for rec, x in zip(owner[hit].tolist(), h[hit].tolist()):
            hits_by_record[rec].append(x)
        for rec, hashes in hits_by_record.items():
            covered: dict[int, set[int]] = defaultdict(set)
            for x in set(hashes):
                for g, p in self.where[x]:
                    size = self.prompts[g][2]
                    covered[g].update(range(p, min(p + self.n, size)))
            best: dict[int, Match] = {}
            for g, c in covered.items():
                bi, pi, size = self.prompts[g]
                score = len(c) / size
                if score > self.threshold and (bi not in best or score > best[bi].score):
                    b = self.benchmarks[bi]
                    best[bi] = Match(b.name, b.ids[pi], round(score, 4))
            if best:
                out[rec] = sorted(best.values(), key=lambda m: -m.score)
        return out
