"""Text as ``clean`` compares it: normalised words, their stable hashes, and word n-gram hashes
computed for many records at once with numpy.

Normalisation (exact duplicates, near duplicates and decontamination alike): Unicode NFKC, case
folded, punctuation and whitespace dropped, so "Give three tips." and "give three tips" are the
same words. A word is a run of letters or digits; Chinese and Japanese characters are one word
each (those scripts have no spaces), so n-grams work the same on translated data.

Word hashes are the first 8 bytes of BLAKE2b of the word (stable on every machine and run, unlike
Python's ``hash``), cached per distinct word: a 1M-record corpus has ~10^5 distinct words, so the
cache turns ~2*10^7 hash calls into dict look-ups.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

# Han, kana, CJK compatibility: one word per character. Hangul is written with spaces: runs.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")

U64 = np.uint64
# Odd 64-bit multipliers of a polynomial n-gram hash (fixed: the same n-gram hashes the same in
# every run, so a benchmark's index and a corpus's n-grams always agree).
_MULT = np.random.default_rng(20240419).integers(1, 2**63, size=64, dtype=np.uint64) * U64(2) + U64(1)


def words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def normalised(instruction: str, input: str = "") -> str:
    """The text exact duplicates are found on (instruction and input kept apart by \\x1f)."""
    return " ".join(words(instruction)) + "\x1f" + " ".join(words(input))


def key64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class WordHasher:
    """Stable 64-bit word hashes with a cache of the words seen."""

    def __init__(self) -> None:
        self.cache: dict[str, int] = {}

    def __call__(self, ws: list[str]) -> list[int]:
        out = list(map(self.cache.get, ws))  # C-speed look-ups; new words are rare after the first records
        if None in out:
            for i, h in enumerate(out):
                if h is None:
                    out[i] = self.cache.setdefault(ws[i], key64(ws[i]))
        return out


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    h = h ^ (h >> U64(30))
    h = h * U64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> U64(27))
    h = h * U64(0x94D049BB133111EB)
    return h ^ (h >> U64(31))


def ngram_hashes(flat: np.ndarray, lengths: np.ndarray, n: int, short: str = "whole") -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word n-grams of many texts at once.

    ``flat``: the word hashes of all texts end to end (uint64); ``lengths``: words per text.
    Returns (hashes, owner): one 64-bit hash per n-gram and the index of its text, texts in order.
    A text shorter than ``n`` words gives one hash of all its words when ``short`` is "whole"
    (so "Tell a joke" still has a shingle), none when it is "none"; an empty text gives none.
    """
    if n > len(_MULT):
        raise ValueError(f"n-grams of at most {len(_MULT)} words")
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    total = int(lengths.sum())
    owner_of_word = np.repeat(np.arange(len(lengths)), lengths)
    # position p starts an n-gram when p + n <= end of its text
    ends = np.repeat(starts + lengths, lengths)
    pos = np.arange(total, dtype=np.int64)
    full = pos + n <= ends
    with np.errstate(over="ignore"):
        acc = np.zeros(total, dtype=np.uint64)
        padded = np.concatenate([flat.astype(np.uint64), np.zeros(n, dtype=np.uint64)])
        for k in range(n):  # words past the end of a text count 0: a short text's first window is all of it
            acc += np.where(pos + k < ends, padded[k:k + total] * _MULT[k], U64(0))
        take = full
        size = np.full(total, n, dtype=np.uint64)
        if short == "whole":
            short_start = np.zeros(total, dtype=bool)
            few = (lengths > 0) & (lengths < n)
            short_start[starts[few]] = True
            size[starts[few]] = lengths[few].astype(np.uint64)
            take = full | short_start
        # the length is part of the hash: a 3-word text never equals the 3 words inside a 5-gram
        return _mix(acc[take] + size[take]), owner_of_word[take]
