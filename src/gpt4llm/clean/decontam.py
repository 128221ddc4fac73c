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

Nothing here needs a prompt's text once it is hashed: a benchmark is its prompts' ids, word counts
and ordered n-gram hashes. So gpt4llm ships, instead of the benchmarks' files, their 6-gram indexes
(``gpt4llm/data/decontam/<name>.npz``, built by ``python -m gpt4llm.clean.index``), and
``--against NAME`` works offline at the default n; the cached file (``gpt4llm benchmarks download``)
is preferred when there is one, and serves any n.

Linear time: the benchmarks' n-grams go into one sorted array; each record's n-grams are looked up
with numpy (``searchsorted``), and only the few records with a hit are scored word by word.
"""

from __future__ import annotations

import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from gpt4llm.clean.text import WordHasher, ngram_hashes, words
from gpt4llm.errors import UserError

FORMAT = "gpt4llm decontamination index 1"


@dataclass
class Benchmark:
    """A benchmark's prompts as decontamination needs them: no text, only word counts and n-gram hashes."""

    name: str
    source: str
    """Where the prompts were read: the question file, or gpt4llm's packaged index of it."""
    ids: list[str]
    n: int
    sizes: np.ndarray
    """Words per prompt (int64)."""
    hashes: np.ndarray
    """uint64: each prompt's word n-gram hashes in order (``ngram_hashes``: one hash of all its words
    when it has fewer than n), the prompts end to end."""


def counts(sizes: np.ndarray, n: int) -> np.ndarray:
    """How many hashes ``ngram_hashes`` gives each prompt: size - n + 1, 1 under n words, 0 when empty."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.where(sizes >= n, sizes - n + 1, (sizes > 0).astype(np.int64))


def hashed(name: str, source: str, ids: list[str], texts: list[str], n: int,
           hasher: WordHasher | None = None) -> Benchmark:
    hasher = hasher or WordHasher()
    ws = [hasher(words(t)) for t in texts]
    sizes = np.array([len(w) for w in ws], dtype=np.int64)
    flat = np.array([h for w in ws for h in w], dtype=np.uint64)
    h, _ = ngram_hashes(flat, sizes, n)
    return Benchmark(name, source, list(ids), n, sizes, h)


def prompts(path: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of a question file: each question's instruction and input; every turn of a
    multi-turn question (MT-Bench) as a prompt of its own, ``<id>#2`` for the second."""
    from gpt4llm.eval.questions import load_questions

    ids, texts = [], []
    for q in load_questions(path):
        turns = q.turns or [q.instruction + ("\n" + q.input if q.input else "")]
        for k, t in enumerate(turns, 1):
            ids.append(str(q.question_id) if k == 1 else f"{q.question_id}#{k}")
            texts.append(t)
    return ids, texts


# ---------------------------------------------------------------- the packaged indexes (python -m gpt4llm.clean.index)


def folder() -> Path:
    return Path(str(resources.files("gpt4llm.data").joinpath("decontam")))


def read_index(path: Path) -> tuple[Benchmark, dict]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        sizes = z["sizes"].astype(np.int64)
        bench = Benchmark(meta["name"], str(path), [str(x) for x in z["ids"]], int(meta["n"]), sizes,
                          z["hashes"].astype(np.uint64))
    return bench, meta


def packaged(name: str) -> Benchmark | None:
    """The shipped index of a named benchmark, None when gpt4llm ships none; an index built from
    another file than the one pinned now (a stale index) is refused."""
    from gpt4llm.eval.benchmarks import BENCHMARKS

    path = folder() / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        bench, meta = read_index(path)
        fits = meta.get("format") == FORMAT and meta["name"] == name and len(bench.ids) == len(bench.sizes) \
            and int(counts(bench.sizes, bench.n).sum()) == len(bench.hashes)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: unreadable decontamination index ({e}); reinstall gpt4llm") from e
    if not fits:
        raise UserError(f"{path}: not a decontamination index of {name}; reinstall gpt4llm")
    b = BENCHMARKS[name]
    want = ("git_blob", b.git_blob) if b.git_blob else ("sha256", b.sha256)
    if want[1] and meta.get(want[0]) != want[1]:
        raise UserError(f"{path}: built from another file than the {name} gpt4llm pins ({want[0]} "
                        f"{str(meta.get(want[0]))[:16]}..., expected {want[1][:16]}...); rebuild it: python -m "
                        f"gpt4llm.clean.index --name {name} --from FILE")
    return bench


def known() -> list[str]:
    from gpt4llm.eval.benchmarks import BENCHMARKS

    return [n for n, b in BENCHMARKS.items() if b.kind == "benchmark"]


def load(spec: str, n: int, hasher: WordHasher | None = None) -> Benchmark:
    """The prompts of a --against value, hashed for n-grams of ``n`` words. A named benchmark comes
    from the benchmark cache (the real file: any n), else from gpt4llm's packaged index of it (only
    its n: 6); a question file is named by its file name."""
    from gpt4llm.eval.benchmarks import BENCHMARKS, cache_dir, resolve as cached

    if spec in BENCHMARKS and not Path(spec).exists():
        b = BENCHMARKS[spec]
        if b.kind != "benchmark":
            raise UserError(f"--against {spec}: a training dataset, not a benchmark; known benchmarks: "
                            f"{', '.join(known())}")
        if (cache_dir() / b.filename).is_file():
            path = cached(spec)
            return hashed(spec, path, *prompts(path), n, hasher)
        packed = packaged(spec)
        if packed is None:
            raise UserError(f"--against {spec}: not available offline (not in the benchmark cache); run 'gpt4llm "
                            f"benchmarks download {spec}' (or with --path FILE), or pass the file: --against FILE")
        if packed.n != n:
            raise UserError(f"--against {spec}: not available offline at n={n} (gpt4llm ships its {packed.n}-gram "
                            f"index); run 'gpt4llm benchmarks download {spec}' (or with --path FILE), or use the "
                            f"default --contamination-ngram {packed.n}")
        return packed
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"--against {spec}: neither a known benchmark ({', '.join(known())}) nor a file")
    return hashed(p.stem, str(p), *prompts(str(p)), n, hasher)


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
    keys: np.ndarray = field(init=False)
    where: dict[int, list[tuple[int, int]]] = field(init=False)
    prompts: list[tuple[int, int, int]] = field(init=False)
    """(benchmark index, prompt index, words) per prompt."""

    def __post_init__(self) -> None:
        self.where = defaultdict(list)
        self.prompts = []
        for bi, b in enumerate(self.benchmarks):
            if b.n != self.n:
                raise ValueError(f"{b.name}: hashed for {b.n}-grams, not {self.n}")
            k = counts(b.sizes, self.n)
            if len(k) != len(b.ids) or int(k.sum()) != len(b.hashes):
                raise ValueError(f"{b.name}: {len(b.hashes)} hashes do not fit {len(b.ids)} prompts")
            hashes, start = b.hashes.tolist(), 0
            for pi, (size, m) in enumerate(zip(b.sizes.tolist(), k.tolist())):
                g = len(self.prompts)
                self.prompts.append((bi, pi, size))
                for pos, x in enumerate(hashes[start:start + m]):
                    self.where[x].append((g, pos))
                start += m
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
