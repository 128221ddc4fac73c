"""SFT data: Alpaca records -> token ids and labels with the template's mask, and the token
statistics that ``--dry-run`` prints (examples, tokens, padding share, truncated, skipped)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import AlpacaRecord
from gpt4llm.templates import IGNORE_INDEX, PromptTemplate


@dataclass
class DataStats:
    records: int = 0
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    truncated: int = 0
    skipped_overlong: int = 0
    skipped_no_target: int = 0
    boundary_merges: int = 0
    max_length: int = 0
    padding_share: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_sft_records(source: str) -> list[AlpacaRecord]:
    rows = io.read_records(source, AlpacaRecord)
    for rec, where in rows:
        if rec.output is None:
            raise UserError(f"{where}: field 'output' is missing; SFT data needs the teacher's answer "
                            "(gpt4llm generate writes it)")
    return [rec for rec, _ in rows]


def encode_all(records: list[AlpacaRecord], tokenizer: Any, template: PromptTemplate, max_length: int,
               overlong: str) -> tuple[list[dict], DataStats]:
    """Encode every record; over-long ones are truncated or skipped, and counted, never silently."""
    if overlong not in ("truncate", "skip"):
        raise UserError(f"--overlong {overlong}: use truncate or skip")
    stats = DataStats(records=len(records), max_length=max_length)
    examples = []
    for rec in records:
        ex = template.encode(tokenizer, rec.instruction, rec.input, rec.output)
        stats.boundary_merges += ex["boundary_merge"]
        if len(ex["input_ids"]) > max_length:
            if overlong == "skip":
                stats.skipped_overlong += 1
                continue
            stats.truncated += 1
            ex["input_ids"], ex["labels"] = ex["input_ids"][:max_length], ex["labels"][:max_length]
        n_target = sum(1 for x in ex["labels"] if x != IGNORE_INDEX)
        if n_target == 0:  # the prompt alone fills max_length: nothing would be learned
            stats.skipped_no_target += 1
            continue
        stats.tokens += len(ex["input_ids"])
        stats.target_tokens += n_target
        examples.append({"input_ids": ex["input_ids"], "labels": ex["labels"], "length": len(ex["input_ids"])})
    stats.examples = len(examples)
    if not examples:
        raise UserError("no training examples left after filtering (all over-long or without target tokens); "
                        "raise --max-length or use --overlong truncate")
    return examples, stats


def padding_share(lengths: list[int], micro_batch: int, packing: bool, grouped: bool) -> float:
    """Share of pad tokens in the batches: 0 with padding-free packing; else pad to the longest
    of each micro-batch (approximating length grouping by sorting in windows of 50 batches)."""
    if packing or not lengths:
        return 0.0
    order = list(lengths)
    if grouped:
        window = micro_batch * 50
        order = [x for i in range(0, len(order), window) for x in sorted(order[i:i + window], reverse=True)]
    padded = sum(max(order[i:i + micro_batch]) * len(order[i:i + micro_batch]) for i in range(0, len(order), micro_batch))
    return 1 - sum(order) / padded


def render_example(tokenizer: Any, ex: dict) -> str:
    """The first example as the model sees it: the masked part marked, the trained part in clear."""
    cut = next((i for i, lab in enumerate(ex["labels"]) if lab != IGNORE_INDEX), len(ex["labels"]))
    masked = tokenizer.decode(ex["input_ids"][:cut])
    trained = tokenizer.decode(ex["input_ids"][cut:])
    return f"[masked, no loss]>>>{masked}<<<[trained]>>>{trained}<<<"


def split_batch(batch_size: int, per_device: int, world: int) -> int:
    """Gradient accumulation so that per_device x accumulation x processes = batch_size."""
    denom = per_device * world
    if batch_size % denom:
        raise UserError(f"--batch-size {batch_size} is not a multiple of --per-device-batch {per_device} x "
                        f"{world} processes; e.g. use --per-device-batch {math.gcd(batch_size, per_device) or 1}")
    return batch_size // denom
