"""Training data: Alpaca records -> token ids and labels with the template's mask, the token
statistics that ``--dry-run`` prints (examples, tokens, padding share, truncated, skipped), and
the collators that turn examples into micro-batches (padded, or packed rows without
cross-example attention)."""

from __future__ import annotations

import heapq
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
    """Alpaca records with ``output``: a file, hf:NAME, or a named dataset (alpaca-gpt4-en)."""
    from gpt4llm.eval.benchmarks import resolve

    rows = io.read_records(resolve(source), AlpacaRecord)
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
        # meta.unfinished: an answer cut at a token limit (train iterate's samples), trained without EOS
        unfinished = bool(((rec.model_extra or {}).get("meta") or {}).get("unfinished"))
        ex = template.encode(tokenizer, rec.instruction, rec.input, rec.output, finished=not unfinished)
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


def attention_ratio(config: Any) -> float:
    """Executed attention FLOPs per (query, key) pair over linear-layer FLOPs per token, for a
    decoder with this config: 4 x hidden x layers / (2 x linear parameters), the parameters
    estimated from the config (attention with grouped KV heads, a gated MLP, the LM head)."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    h, layers = c.hidden_size, c.num_hidden_layers
    heads = getattr(c, "num_attention_heads", None) or max(h // 64, 1)
    kv_dim = (getattr(c, "num_key_value_heads", None) or heads) * (getattr(c, "head_dim", None) or h // heads)
    inter = getattr(c, "intermediate_size", None) or getattr(c, "ffn_dim", None) or 4 * h
    linear = layers * (2 * h * h + 2 * h * kv_dim + 3 * h * inter) + c.vocab_size * h
    return 2 * h * layers / linear


def plan_rows(lengths: list[int], ratio: float) -> list[list[int]]:
    """Which examples of a micro-batch go end to end in which row (indices, in their order).

    Attention kernels without variable-length support (SDPA, eager) compute a whole row's L x L
    scores and mask the cross-example ones away, so one row of 8 x 250 tokens pays 2,000^2 pairs
    of attention and memory; rows padded to the longest pay for pad tokens instead. Each row
    count r from 1 to n is tried, the examples spread longest-first over the least-loaded row
    (LPT), and the plan with the least estimated compute, r x longest row x (1 + ratio x longest
    row), is kept. ratio = 0 (FlashAttention's varlen kernels) always gives one padding-free row.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    best: list[list[int]] = [list(range(len(lengths)))]
    best_cost = float("inf")
    floor = max(lengths, default=0) * (1 + ratio * max(lengths, default=0))  # no row is shorter than the longest example
    for r in range(1, len(lengths) + 1):
        if r * floor >= best_cost:  # every larger r costs at least this much: stop
            break
        rows: list[list[int]] = [[] for _ in range(r)]
        heap = [(0, j) for j in range(r)]  # (load, row): the least-loaded row first, lowest index on ties
        for i in order:
            load, j = heapq.heappop(heap)
            rows[j].append(i)
            heapq.heappush(heap, (load + lengths[i], j))
        longest = max(load for load, _ in heap)
        cost = r * longest * (1 + ratio * longest)
        if cost < best_cost:
            best, best_cost = [sorted(row) for row in rows], cost
    return best


def padding_share(lengths: list[int], micro_batch: int, packing: bool, grouped: bool, ratio: float = 0.0,
                  seed: int = 42) -> float:
    """Predicted share of pad tokens over one epoch: the micro-batches in the order transformers'
    sampler draws them (``get_length_grouped_indices`` when grouped, else a random permutation),
    packed into the rows of ``plan_rows`` padded to the longest, or each padded to its longest
    example."""
    if not lengths:
        return 0.0
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed)
    indices = (get_length_grouped_indices(lengths, micro_batch, generator=generator) if grouped
               else torch.randperm(len(lengths), generator=generator).tolist())
    order = [lengths[i] for i in indices]
    padded = 0
    for i in range(0, len(order), micro_batch):
        batch = order[i:i + micro_batch]
        if packing:
            rows = plan_rows(batch, ratio)
            padded += len(rows) * max(sum(batch[j] for j in row) for row in rows)
        else:
            padded += max(batch) * len(batch)
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


# ---------------------------------------------------------------- collators (torch imported on call)


class PaddedCollator:
    """Right-padded micro-batches; pad positions get label -100 and attention 0."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]):
        import torch

        n = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"])
            labels[i, :k] = torch.tensor(f["labels"])
            attn[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attn}


class PackedRowsCollator:
    """Padding-free micro-batches: examples end to end in rows, position ids restarting at 0 at
    each example and no attention mask, so transformers masks attention block-diagonally and no
    example sees another. How many rows is ``plan_rows``'s choice (one row with FlashAttention's
    varlen kernels; with SDPA or eager attention as many as keep the L x L scores cheap). A row
    shorter than the longest ends in a pad block of its own (label -100, positions from 0)."""

    def __init__(self, pad_id: int, ratio: float):
        self.pad_id, self.ratio = pad_id, ratio

    def __call__(self, features: list[dict]):
        import torch

        rows = plan_rows([len(f["input_ids"]) for f in features], self.ratio)
        width = max(sum(len(features[i]["input_ids"]) for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                k = len(features[i]["input_ids"])
                ids[r, at:at + k] = torch.tensor(features[i]["input_ids"])
                labels[r, at:at + k] = torch.tensor(features[i]["labels"])
                positions[r, at:at + k] = torch.arange(k)
                at += k
            positions[r, at:] = torch.arange(width - at)
        return {"input_ids": ids, "labels": labels, "position_ids": positions}


def real_tokens(inputs: dict) -> int:
    """Non-pad tokens of a micro-batch: the attention mask's ones; in packed rows, the tokens of
    the segments (from one position id 0 to the next) that carry a label."""
    import torch

    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum())
    if "position_ids" not in inputs or "labels" not in inputs:
        return inputs["input_ids"].numel()
    segment = (inputs["position_ids"] == 0).cumsum(-1)
    segment = segment + torch.arange(segment.shape[0], device=segment.device)[:, None] * (segment.max() + 1)
    labelled = torch.zeros(int(segment.max()) + 1, dtype=torch.bool, device=segment.device)
    labelled[segment[inputs["labels"] != IGNORE_INDEX]] = True
    return int(labelled[segment].sum())
