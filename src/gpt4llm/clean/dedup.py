"""Exact and near duplicates of instructions (instruction + input), keeping the first of each.

Exact: the same normalised words (``text.normalised``), compared by a 64-bit hash.

Near: MinHash LSH over word n-grams, as datasketch defines it: the permutations are datasketch's
(``MinHash(num_perm, seed).permutations``, its default "affine32" scheme: MurmurHash3's 32-bit
finaliser on each n-gram hash, then ``a*h + b mod 2^32``), and the bands and rows are what
``datasketch.MinHashLSH(threshold, num_perm)`` chooses for the threshold. What datasketch does one
record at a time in Python, this does for all records at once with numpy:

- signatures: the minimum over each record's n-grams, by ``np.minimum.reduceat`` (equal to
  ``MinHash.update_batch`` record by record: tests/unit/test_clean.py checks it);
- buckets: each band's rows hashed to 64 bits and sorted, instead of MinHashLSH's dict of sets,
  which costs ~3.5 KB per record at 14 bands (measured on 100,000: 3.5 GB for a million);
- every candidate pair of a bucket (a star on the bucket's first record past 32 members) counts
  only if its signatures agree on at least ``threshold`` of their values (the estimated Jaccard
  similarity), which removes LSH's false candidates;
- records are taken in order: one similar to an earlier kept record is its near duplicate, else it
  is kept (datasketch's README way: query the index of kept records, then insert). Not connected
  components: Vicuna-80's Fermi questions share a 20-word tail, and chaining them removed records
  only 0.48 similar to the one kept.
"""

from __future__ import annotations

import itertools

import numpy as np

from gpt4llm.clean.text import U64, _mix, ngram_hashes

STAR_ABOVE = 32  # buckets larger than this link each member to the first only (pairs grow as k^2)
# datasketch's (false positive, false negative) weights when it picks bands and rows. Candidates are
# verified on their signatures, so a false candidate costs a comparison and a missed pair a duplicate:
# (0.1, 0.9) picks 25 bands x 5 rows at 0.6 (a pair at similarity 0.6 is a candidate with p = 0.87,
# at 0.7 with 0.99, at 0.3 with 0.06); the even (0.5, 0.5) picks 18 x 7 (0.40 at 0.6, 0.79 at 0.7).
WEIGHTS = (0.1, 0.9)


def exact(keys: np.ndarray, active: np.ndarray) -> np.ndarray:
    """For each record, the index of the earlier active record with the same key, else -1."""
    out = np.full(len(keys), -1, dtype=np.int64)
    idx = np.nonzero(active)[0]
    if len(idx) == 0:
        return out
    _, first, inverse = np.unique(keys[idx], return_index=True, return_inverse=True)
    target = idx[first[inverse]]
    dup = target != idx
    out[idx[dup]] = target[dup]
    return out


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (datasketch's pre-mix of every input hash)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def fold32(h64: np.ndarray) -> np.ndarray:
    """A 64-bit n-gram hash as the 32-bit input datasketch's affine32 MinHash takes."""
    return ((h64 ^ (h64 >> U64(32))) & U64(0xFFFFFFFF)).astype(np.uint32)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(flat: np.ndarray, lengths: np.ndarray, n: int, num_perm: int, seed: int,
               chunk_words: int = 1 << 18) -> np.ndarray:
    """MinHash signatures (records x num_perm, uint32) of the word n-grams of each record; every
    record must have at least one word (a record shorter than n: one n-gram of all its words)."""
    a, b = permutations(num_perm, seed)
    sig = np.empty((len(lengths), num_perm), dtype=np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    lo = 0
    while lo < len(lengths):  # chunks of ~chunk_words words
        hi = int(np.searchsorted(starts, starts[lo] + chunk_words, side="right"))
        hi = max(hi - 1, lo + 1)
        h, owner = ngram_hashes(flat[starts[lo]:starts[hi]], lengths[lo:hi], n)
        x = _fmix32(fold32(h))
        cuts = np.searchsorted(owner, np.arange(hi - lo))
        # one permutation at a time over a contiguous row: 20x faster than reduceat over an
        # (n-grams x num_perm) matrix's columns (measured: 0.06 s vs 1.3 s for 262,144 n-grams x 128)
        row = np.empty(len(x), dtype=np.uint32)
        out = np.empty((num_perm, hi - lo), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for k in range(num_perm):
                np.multiply(x, a[k], out=row)
                row += b[k]
                out[k] = np.minimum.reduceat(row, cuts)
        sig[lo:hi] = out.T
        lo = hi
    return sig


def bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH chooses for this threshold and ``WEIGHTS``."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=WEIGHTS)
    return lsh.b, lsh.r


def _band_keys(sig: np.ndarray, start: int, rows: int) -> np.ndarray:
    mult = np.random.default_rng(start).integers(1, 2**63, size=rows, dtype=np.uint64) * U64(2) + U64(1)
    acc = np.zeros(len(sig), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            acc += sig[:, start + j].astype(np.uint64) * mult[j]
    return _mix(acc)


def candidate_pairs(sig: np.ndarray, b: int, r: int) -> np.ndarray:
    """(i, j) pairs, i < j, sharing a bucket in some band (unique, as an (m, 2) array)."""
    pairs = []
    for band in range(b):
        keys = _band_keys(sig, band * r, r)
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        edge = np.flatnonzero(k[1:] != k[:-1]) + 1
        starts = np.concatenate([[0], edge])
        sizes = np.diff(np.concatenate([starts, [len(k)]]))
        two = starts[sizes == 2]
        pairs.append(np.stack([order[two], order[two + 1]], axis=1))
        for s, size in zip(starts[sizes > 2], sizes[sizes > 2]):
            members = order[s:s + size]  # ascending: the sort is stable and records come in order
            if size > STAR_ABOVE:
                pairs.append(np.stack([np.full(size - 1, members[0]), members[1:]], axis=1))
            else:
                pairs.append(np.array(list(itertools.combinations(members, 2)), dtype=np.int64))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    p = np.concatenate(pairs).astype(np.int64)
    p.sort(axis=1)
    return np.unique(p, axis=0)


def agreement(sig: np.ndarray, pairs: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """The estimated Jaccard similarity of each pair: the share of equal signature values."""
    out = np.empty(len(pairs), dtype=np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


def near(sig: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For each record (row of ``sig``): the earliest kept record it is similar to, else -1 (kept);
    and the estimated similarity to it. Records are taken in order, so the first of each group is
    kept and a record is removed only for a kept record it resembles (no chains: A~B and B~C with C
    unlike A keeps A and C)."""
    num = len(sig)
    target = np.full(num, -1, dtype=np.int64)
    similarity = np.zeros(num, dtype=np.float64)
    if num < 2:
        return target, similarity
    b, r = bands(threshold, sig.shape[1])
    pairs = candidate_pairs(sig, b, r)
    if len(pairs) == 0:
        return target, similarity
    agree = agreement(sig, pairs)
    keep = agree >= threshold
    pairs, agree = pairs[keep], agree[keep]
    order = np.lexsort((pairs[:, 0], pairs[:, 1]))  # by the later record, then the earlier
    for (i, j), a in zip(pairs[order].tolist(), agree[order].tolist()):
        if target[j] < 0 and target[i] < 0:
            target[j], similarity[j] = i, a
    return target, similarity
