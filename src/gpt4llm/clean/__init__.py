"""``gpt4llm clean``: the teacher's data without duplicates, benchmark prompts and bad answers.

Reads Alpaca records (``instruction``, ``input``, ``output``, optional ``meta``: what ``generate``
writes, the paper's released files, any JSONL/JSON/Parquet/hf: source), in two passes so that a
million records never sit in memory at once:

1. each record is read, validated and checked by the quality filters (``filters``); its normalised
   words are hashed and kept as numbers;
2. the records the filters kept are checked against the benchmarks (``decontam``), then for exact
   and near duplicates (``dedup``), keeping the first of each;
3. the input is read again: kept records are written as they were (a JSONL line byte for byte), every
   removed one to ``<output>.removed.jsonl`` with its reason, its place (file:line), and what it
   matched; the counts, examples and contamination per benchmark go to ``<output>.summary.json``.

A record is removed for the first reason in this order: the quality filters (empty, truncated,
refusal, wrong_language, copies_instruction), contaminated, exact_duplicate, near_duplicate; so a
duplicate is always the copy of a good record, and a contaminated record never keeps a cluster.
Nothing is written until every record has been read and checked: bad input is one line, exit 2.
"""

from __future__ import annotations

import json
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator

import numpy as np
from pydantic import Field, ValidationError

from gpt4llm import io
from gpt4llm.clean import decontam, dedup
from gpt4llm.clean.filters import FILTERS, Filters
from gpt4llm.clean.text import WordHasher, key64, words
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt, Settings

REASONS = (*FILTERS, "contaminated", "exact_duplicate", "near_duplicate")
DEFAULT_AGAINST = ("vicuna80", "mt-bench", "user-oriented-252")  # indexes ship (vicuna-bench = vicuna80)


class CleanSettings(Settings):
    """gpt4llm clean: drop duplicates, benchmark prompts and bad answers from instruction data (each removal listed)."""

    input: Annotated[list[str], Opt(argument=True, pipeline=True)]
    """Alpaca records: files (JSONL, JSON, Parquet), hf:NAME[:split] or a dataset name; several are read in order."""
    output: Annotated[Path, Opt("-o", pipeline=True)]
    """The kept records (JSONL unless the name ends in .json or .parquet); beside it .removed.jsonl and .summary.json."""
    against: list[str] = []
    """Benchmarks to decontaminate against: names (gpt4llm benchmarks list) or question files; default vicuna80, mt-bench, user-oriented-252 (pipeline: the sets it evaluates on, plus these)."""
    decontaminate: bool = True
    """Remove records whose instruction and input overlap a benchmark prompt (reason contaminated)."""
    contamination_ngram: int = Field(6, ge=1, le=64)
    """Word n-grams shared with a benchmark prompt (Tulu 3: 8; 6 finds lightly edited short prompts, see README); a named benchmark not in the benchmark cache is read from gpt4llm's 6-gram index, so only 6 works offline."""
    contamination_threshold: float = Field(0.5, ge=0, lt=1)
    """Contaminated when more than this share of a prompt's words lie in shared n-grams (Tulu 3: 0.5)."""
    exact: bool = True
    """Remove exact duplicates: the same instruction and input up to case, whitespace and punctuation."""
    near: bool = True
    """Remove near duplicates: MinHash LSH (datasketch's permutations and bands) over word n-grams."""
    near_ngram: int = Field(2, ge=1, le=64)
    """Word n-gram size of near duplicates (instructions are short: 5-grams find 36% of one-word edits, 2-grams 88%; README)."""
    near_threshold: float = Field(0.6, gt=0, le=1)
    """Estimated Jaccard similarity of word n-grams at which two instructions are near duplicates."""
    num_perm: int = Field(128, ge=16, le=1024)
    """MinHash permutations (more: a finer similarity estimate, slower)."""
    seed: Annotated[int, Opt(pipeline=True)] = 1
    """Seed of the MinHash permutations: the same seed gives the same clusters (pipeline: its seed)."""
    empty: bool = True
    """Remove records with no output or only whitespace (reason empty)."""
    truncated: bool = True
    """Remove answers cut by the token limit (meta.finish_reason length; reason truncated)."""
    refusal: bool = True
    """Remove refusals ("As an AI language model..."; the list is gpt4llm/data/refusals.txt; reason refusal)."""
    wrong_language: bool = True
    """Remove outputs not in the expected language (--language, else meta.language; reason wrong_language)."""
    copies_instruction: bool = True
    """Remove outputs that repeat the instruction (80% of their words in its 3-grams; reason copies_instruction)."""
    language: Annotated[str | None, Opt(pipeline=True)] = None
    """The outputs' expected language (zh or Chinese); default each record's meta.language, unchecked without."""
    examples: int = Field(3, ge=0)
    """Examples per reason in the summary."""
    quiet: Annotated[bool, Opt("-q", pipeline=True)] = False
    """No progress lines."""


# ---------------------------------------------------------------- reading, twice


def _is_jsonl(path: Path) -> bool:
    """JSONL unless Parquet or a JSON array (as ``io.read_rows`` decides)."""
    if path.suffix in (".jsonl", ".ndjson"):
        return True
    if path.suffix == ".parquet":
        return False
    with open(path, "rb") as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"["


def _rows(source: str) -> Iterator[tuple[str, Any, str | None]]:
    """(where, record, its JSONL line or None) of one source; a JSONL file is streamed."""
    path = Path(source)
    if source.startswith("hf:") or not path.is_file() or not _is_jsonl(path):
        for row in io.read_rows(source):
            yield row.where, row.data, None
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path}:{n}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); re-encode the file as UTF-8") from e
            if n == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}:{e.colno}: malformed JSON ({e.msg})") from e
            yield f"{path}:{n}", data, line


def _record(data: Any, where: str):
    from gpt4llm.schemas import AlpacaRecord

    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    if "instruction" not in data and "user_input" in data:
        raise UserError(f"{where}: a comparison record (user_input, responses_and_scores); clean reads Alpaca records "
                        "(instruction, input, output): clean the teacher's data before compare")
    try:
        return AlpacaRecord.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{where}: {io.describe_validation_error(e)}") from e


@dataclass
class Pass1:
    reason: np.ndarray       # int8: 0 kept, else 1 + index in REASONS
    detail: dict[int, str]
    keys: np.ndarray         # uint64: hash of the normalised instruction + input
    flat: np.ndarray         # uint64: word hashes of every checked record, end to end
    lengths: np.ndarray      # int64: words per record (0 for records the filters removed)
    hasher: WordHasher


def _pass1(sources: list[str], filters: Filters, say) -> Pass1:
    hasher = WordHasher()
    reason, keys, lengths, flat = array("b"), array("Q"), array("q"), array("Q")
    detail: dict[int, str] = {}
    codes = {r: i + 1 for i, r in enumerate(REASONS)}
    for source in sources:
        for where, data, _ in _rows(source):
            rec = _record(data, where)
            meta = (rec.model_extra or {}).get("meta")
            bad = filters.check(rec.instruction, rec.output, meta, where)
            if bad:
                detail[len(reason)] = bad[1]
                reason.append(codes[bad[0]])
                keys.append(0)
                lengths.append(0)
                continue
            iw, pw = words(rec.instruction), words(rec.input)
            norm = " ".join(iw) + "\x1f" + " ".join(pw)
            reason.append(0)
            # no words at all ("???"): the raw text is the key, so only the same characters are duplicates
            keys.append(key64(norm if len(norm) > 1 else "\x00" + rec.instruction.strip() + "\x1f" + rec.input.strip()))
            ws = iw + pw
            lengths.append(len(ws))
            flat.extend(hasher(ws))
        say(f"read {source}: {len(reason):,} records so far")
    if not reason:
        raise UserError(f"{', '.join(sources)}: no records")
    return Pass1(np.frombuffer(reason, dtype=np.int8).copy(), detail, np.frombuffer(keys, dtype=np.uint64),
                 np.frombuffer(flat, dtype=np.uint64), np.frombuffer(lengths, dtype=np.int64), hasher)


# ---------------------------------------------------------------- deciding


@dataclass
class Found:
    matches: dict[int, list[decontam.Match]]
    target: dict[int, int]
    """Duplicate -> the kept record it repeats."""
    similarity: dict[int, float]
    near: dict


def _code(name: str) -> int:
    return REASONS.index(name) + 1


def _decide(cfg: CleanSettings, p: Pass1, benches: list[decontam.Benchmark], say) -> Found:
    found = Found({}, {}, {}, {})
    starts = np.concatenate([[0], np.cumsum(p.lengths)])
    if cfg.decontaminate and benches:
        index = decontam.Index(benches, cfg.contamination_ngram, cfg.contamination_threshold)
        step = 100_000  # records removed by the filters have no words: contiguous ranges, no copying
        for lo in range(0, len(p.lengths), step):
            hi = min(lo + step, len(p.lengths))
            for i, ms in index.match(p.flat[starts[lo]:starts[hi]], p.lengths[lo:hi]).items():
                found.matches[lo + i] = ms
                p.reason[lo + i] = _code("contaminated")
        say(f"decontaminated against {', '.join(b.name for b in benches)}: {len(found.matches):,} records match")
    if cfg.exact:
        t = dedup.exact(p.keys, p.reason == 0)
        for i in np.flatnonzero(t >= 0).tolist():
            found.target[i] = int(t[i])
            p.reason[i] = _code("exact_duplicate")
        say(f"exact duplicates: {int((t >= 0).sum()):,}")
    if cfg.near:
        idx = np.flatnonzero((p.reason == 0) & (p.lengths > 0))
        mask = np.zeros(len(p.lengths), dtype=bool)
        mask[idx] = True
        sig = dedup.signatures(p.flat[np.repeat(mask, p.lengths)], p.lengths[idx], cfg.near_ngram, cfg.num_perm,
                               cfg.seed)
        t, sim = dedup.near(sig, cfg.near_threshold)
        del sig
        for j in np.flatnonzero(t >= 0).tolist():
            i = int(idx[j])
            found.target[i] = int(idx[t[j]])
            found.similarity[i] = round(float(sim[j]), 4)
            p.reason[i] = _code("near_duplicate")
        for i, first in found.target.items():  # an exact copy of a record that is itself a near duplicate
            while first in found.target:
                first = found.target[first]
            found.target[i] = first
        b, r = dedup.bands(cfg.near_threshold, cfg.num_perm)
        found.near = {"bands": b, "rows": r, "checked": len(idx)}
        say(f"near duplicates: {int((t >= 0).sum()):,} (MinHash LSH, {b} bands x {r} rows)")
    return found


# ---------------------------------------------------------------- writing


def removed_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".removed.jsonl")


def summary_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".summary.json")


def _write(cfg: CleanSettings, sources: list[str], p: Pass1, found: Found, benches, say) -> dict:
    fmt = io.format_for(cfg.output)
    wanted = set(found.target.values())
    seen: dict[int, dict] = {}
    by_reason = {r: 0 for r in REASONS}
    examples: dict[str, list] = {r: [] for r in REASONS}
    per_bench = {b.name: {"source": b.source, "prompts": len(b.ids), "records": 0, "prompts_matched": set(),
                          "matches": []} for b in benches}
    kept_rows: list = []
    i = 0
    with io.atomic_path(cfg.output) as out_tmp, io.atomic_path(removed_path(cfg.output)) as rm_tmp, \
            open(rm_tmp, "w", encoding="utf-8") as rm:
        kept = open(out_tmp, "w", encoding="utf-8") if fmt == "jsonl" else None
        try:
            for source in sources:
                for where, data, line in _rows(source):
                    rid = data.get("id") if isinstance(data.get("id"), str) else None
                    if i in wanted:
                        seen[i] = {"where": where, "id": rid}
                    code = int(p.reason[i])
                    if code == 0:
                        if kept is None:
                            kept_rows.append(data)
                        elif line is not None:
                            kept.write(line if line.endswith("\n") else line + "\n")
                        else:
                            kept.write(json.dumps(data, ensure_ascii=False) + "\n")
                        i += 1
                        continue
                    reason = REASONS[code - 1]
                    entry: dict[str, Any] = {"reason": reason, "where": where, "id": rid}
                    if reason == "contaminated":
                        ms = found.matches[i]
                        entry["detail"] = f"{ms[0].benchmark} {ms[0].id}: {ms[0].score:.0%} of its words"
                        entry["matched"] = [{"benchmark": m.benchmark, "id": m.id, "score": m.score} for m in ms]
                        for m in ms:
                            pb = per_bench[m.benchmark]
                            pb["records"] += 1
                            pb["prompts_matched"].add(m.id)
                            if len(pb["matches"]) < 100:
                                pb["matches"].append({"record": rid or where, "where": where, "benchmark_id": m.id,
                                                      "score": m.score})
                    elif i in found.target:
                        t = seen[found.target[i]]
                        entry["matched"] = {**t, **({"similarity": found.similarity[i]} if i in found.similarity else {})}
                        entry["detail"] = f"repeats {t['where'].rsplit('/', 1)[-1]}"
                    else:
                        entry["detail"] = p.detail.get(i, "")
                    entry["record"] = data
                    rm.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    by_reason[reason] += 1
                    if len(examples[reason]) < cfg.examples:
                        examples[reason].append({k: v for k, v in entry.items() if k != "record"}
                                                | {"instruction": str(data.get("instruction", ""))[:200]})
                    i += 1
        finally:
            if kept is not None:
                kept.close()
        if kept is None:
            io.write_records(out_tmp, kept_rows, fmt)
    for pb in per_bench.values():
        pb["prompts_matched"] = len(pb["prompts_matched"])
    removed = sum(by_reason.values())
    return {"inputs": sources, "output": str(cfg.output), "removed_file": str(removed_path(cfg.output)),
            "records": i, "kept": i - removed, "removed": removed, "by_reason": by_reason,
            "examples": {k: v for k, v in examples.items() if v}, "contamination": per_bench}


# ---------------------------------------------------------------- the stage


def run(cfg: CleanSettings) -> dict:
    from gpt4llm.eval.benchmarks import resolve

    t0 = time.perf_counter()
    say = (lambda msg: None) if cfg.quiet else _printer()
    sources = [resolve(s) for s in cfg.input]
    if not sources:
        raise UserError("clean: give one or more input files")
    out = cfg.output.resolve()
    for s in sources:
        if Path(s).exists() and Path(s).resolve() in (out, removed_path(out), summary_path(out)):
            raise UserError(f"--output {cfg.output}: that is an input; write the cleaned records to another file")
    filters = Filters({f: getattr(cfg, f) for f in FILTERS}, cfg.language)
    n = cfg.contamination_ngram  # a named benchmark not in the cache: its packaged index, at n = 6 only
    benches = [decontam.load(a, n) for a in dict.fromkeys(cfg.against or DEFAULT_AGAINST)] if cfg.decontaminate else []
    p = _pass1(sources, filters, say)
    found = _decide(cfg, p, benches, say)
    summary = _write(cfg, sources, p, found, benches, say)
    summary["near"] = found.near
    summary["settings"] = cfg.model_dump(mode="json", exclude={"input", "output", "quiet"})
    summary["against"] = [b.name for b in benches]
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    io.write_json(summary_path(cfg.output), summary)
    return summary


def _printer():
    import sys

    def say(msg: str) -> None:
        print(f"clean: {msg}", file=sys.stderr, flush=True)

    return say


def summary_text(s: dict) -> str:
    """What ``gpt4llm clean`` prints: counts by reason, contamination per benchmark, examples."""
    lines = [f"kept {s['kept']:,} of {s['records']:,} records ({s['removed']:,} removed) in {s['seconds']:.1f} s"]
    for reason, n in s["by_reason"].items():
        if n:
            lines.append(f"  {reason:<20} {n:>9,}")
    for name, b in s["contamination"].items():
        lines.append(f"  against {name}: {b['records']:,} records match {b['prompts_matched']} of its "
                     f"{b['prompts']} prompts")
    for reason, xs in s["examples"].items():
        for x in xs[:2]:
            lines.append(f"  e.g. {reason}: {x['where']}: {x['instruction'][:60]!r} ({x['detail'][:60]})")
    lines.append(f"wrote {s['output']}, {s['removed_file']} and {summary_path(s['output'])}")
    return "\n".join(lines)
