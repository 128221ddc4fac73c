"""``gpt4llm self-instruct``: new instructions from seed tasks, as Alpaca built its 52K.

Each round prompts the teacher with 3 seed tasks and up to 2 tasks generated earlier, in the
numbered ``###`` format, and parses the new tasks it lists. A candidate is kept if it has
3-150 words, asks for nothing a text model cannot do (Alpaca's list: image, graph, file, map,
draw, plot, video, music, ...), does not start with punctuation or a non-ASCII character, and
its ROUGE-L F against every kept instruction (seeds included) is <= 0.7. The all-pairs check
skips pairs whose ROUGE-L cannot reach 0.7 (LCS <= the multiset overlap of tokens) and runs
on several processes for large pools. Round k's prompt depends only on the seed, the shard
and the instructions kept before it, and its sample index is k, so a re-run replays the
journal with no call and continues.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import run_calls
from gpt4llm.schemas import record_id
from gpt4llm.settings import Opt
from gpt4llm.shard import parse_shard
from gpt4llm.stage import SEEDS, ModelCallSettings, journal_path, load_instructions, open_backend

PROMPT = resources.files("gpt4llm.prompts").joinpath("self_instruct.txt").read_text(encoding="utf-8")
BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
             "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
THRESHOLD = 0.7


def example_block(i: int, instruction: str, input: str, output: str) -> str:
    return f"###\n{i}. Instruction: {instruction}\n{i}. Input:\n{input or '<noinput>'}\n{i}. Output:\n{output}\n"


def parse_tasks(text: str) -> list[dict]:
    """Tasks from a numbered ``###`` list (Alpaca's format); malformed entries are skipped."""
    tasks = []
    for block in re.split(r"\n?###\n?", text):
        m = re.search(r"\d+\s*\.\s*Instruction:\s*(.*?)\s*\d+\s*\.\s*Input:\s*(.*?)\s*\d+\s*\.\s*Output:\s*(.*)", block, re.S)
        if not m:
            continue
        instruction, input, output = (x.strip() for x in m.groups())
        if input.lower() in ("<noinput>", "noinput", "<no input>", ""):
            input = ""
        if instruction and output:
            tasks.append({"instruction": instruction, "input": input, "output": output})
    return tasks


def filter_reason(instruction: str) -> str | None:
    words = instruction.split()
    if len(words) <= 3:
        return "too short"
    if len(words) > 150:
        return "too long"
    low = instruction.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", low) for w in BLACKLIST):
        return "not doable by a text model"
    if low.startswith("write a program"):
        return "not doable by a text model"  # Alpaca's rule: such tasks rarely have a checkable answer
    if not instruction[0].isascii() or re.match(r"[^\w\s\"'(]", instruction[0]):
        return "starts with punctuation or a non-ASCII character"
    return None


def tokens(text: str) -> list[str]:
    from rouge_score import tokenize

    return tokenize.tokenize(text, None)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    lcs = _lcs(a, b)
    return 0.0 if lcs == 0 else 2 * lcs / (len(a) + len(b))  # F1 of P = lcs/|a|, R = lcs/|b|


def too_similar(cand: list[str], pool: list[list[str]], threshold: float = THRESHOLD) -> bool:
    """True if ROUGE-L F(cand, p) > threshold for some p; pairs that cannot reach it are skipped."""
    cc = Counter(cand)
    for p in pool:
        overlap = sum((cc & Counter(p)).values())  # an upper bound on the LCS
        if 2 * overlap / (len(cand) + len(p) or 1) <= threshold:
            continue
        if rouge_l(cand, p) > threshold:
            return True
    return False


def _chunk_similar(args) -> bool:
    cand, chunk = args
    return too_similar(cand, chunk)


def too_similar_parallel(cand: list[str], pool: list[list[str]], workers: int, executor) -> bool:
    if workers <= 1 or len(pool) < 5000 or executor is None:
        return too_similar(cand, pool)
    size = -(-len(pool) // workers)
    return any(executor.map(_chunk_similar, [(cand, pool[i:i + size]) for i in range(0, len(pool), size)]))


class SelfInstructSettings(ModelCallSettings):
    """gpt4llm self-instruct: new instructions from seed tasks, as Alpaca made its 52K."""

    output: Annotated[Path, Opt("-o", pipeline=True)]
    """The new instructions (JSONL, Alpaca records)."""
    seeds: Annotated[str, Opt(pipeline=True)] = SEEDS
    """Seed tasks (Alpaca records); 'seeds' = the bundled 40 (Alpaca used 175)."""
    num: int = Field(100, ge=1)
    """New instructions to keep (Alpaca: 52,002)."""
    teacher: Annotated[str, Opt("-m", pipeline=True)] = DEFAULT_MODEL
    """The model that writes instructions (Alpaca: text-davinci-003)."""
    tasks_per_prompt: int = Field(20, ge=1)
    """Instructions asked for per prompt (Alpaca: 20)."""
    max_rounds: int = Field(50, ge=1)
    """Stop after this many prompts even if --num is not reached."""
    max_tokens: int = Field(1024, ge=1)
    """Max completion tokens per prompt."""
    temperature: float = Field(1.0, ge=0, le=2)
    """Sampling temperature (Alpaca: 1.0)."""
    seed: int = 0
    """Sampling of the examples shown per round (with the shard: deterministic rounds, so a re-run resumes)."""
    shard: Annotated[str | None, Opt(pipeline=True)] = None
    """i/n: this host's stream of rounds."""
    workers: int = Field(1, ge=1)
    """Processes for the ROUGE-L check of large pools."""

    def params(self) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens)


def run(cfg: SelfInstructSettings) -> dict:
    shard = parse_shard(cfg.shard)
    seeds = load_instructions(cfg.seeds)
    seed_tasks = [{"instruction": s.instruction, "input": s.input, "output": s.output or ""} for s in seeds]
    backend = open_backend(cfg.teacher, "--teacher", cfg.backend, quiet=cfg.quiet, output=cfg.output)
    prices, params = cfg.backend.prices_for(cfg.teacher), cfg.params()
    pool = [tokens(t["instruction"]) for t in seed_tasks]
    kept: list[dict] = []
    reasons: Counter = Counter()
    rounds = calls = 0
    executor = ProcessPoolExecutor(cfg.workers) if cfg.workers > 1 else None
    try:
        with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
            while len(kept) < cfg.num and rounds < cfg.max_rounds:
                rng = random.Random(f"{cfg.seed}/{shard or ''}/{rounds}")
                examples = rng.sample(seed_tasks, min(3, len(seed_tasks)))
                examples += rng.sample(kept, min(2, len(kept)))
                body = "".join(example_block(i + 1, t["instruction"], t["input"], t["output"]) for i, t in enumerate(examples))
                body += f"###\n{len(examples) + 1}. Instruction:"
                prompt = PROMPT.replace("{num}", str(cfg.tasks_per_prompt)).replace("{examples}", body)
                req = Request(params=params, messages=[{"role": "user", "content": prompt}], sample=rounds)
                stats = run_calls(backend, journal, [req], label=f"self-instruct round {rounds + 1}", quiet=True,
                                  prices=prices)
                calls += stats.called
                rounds += 1
                e = stats.entries.get(req.key)
                if e is None or not e.ok:
                    reasons["call failed"] += 1
                    continue
                text = f"{len(examples) + 1}. Instruction:" + e.text
                parsed = parse_tasks(text)
                if not parsed:
                    reasons["unparsable answer"] += 1
                for t in parsed:
                    why = filter_reason(t["instruction"])
                    toks = tokens(t["instruction"])
                    if why is None and too_similar_parallel(toks, pool, cfg.workers, executor):
                        why = f"ROUGE-L > {THRESHOLD} with a kept instruction"
                    if why:
                        reasons[why] += 1
                        continue
                    pool.append(toks)
                    kept.append({**t, "id": record_id(t["instruction"], t["input"]),
                                 "meta": {"round": rounds - 1, "teacher": f"{backend.kind}:{backend.model}"}})
                    if len(kept) >= cfg.num:
                        break
    finally:
        if executor is not None:
            executor.shutdown()
    io.write_records(cfg.output, kept)
    return {"kept": len(kept), "rounds": rounds, "calls": calls, "rejected": dict(reasons), "target": cfg.num,
            "call_failures": reasons["call failed"]}
