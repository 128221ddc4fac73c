"""Comparison records -> preference pairs (PAPER.md section 3), and ``compare export``.

From a prompt with K scored responses, every pair (y_l, y_h) with s_l < s_h: C(K,2) pairs
minus ties. Ties give no pair and are counted; so are pairs whose two texts are identical (the
released v2 data holds 1,665 of them), which teach nothing. Reads our v2 output and the
released ``comparison_data_v2.json`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ValidationError

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import Comparison, ScoredResponse
from gpt4llm.settings import Opt, Settings


class ExportSettings(Settings):
    """gpt4llm compare export: all C(K,2) preference pairs with s_l < s_h; ties and identical texts give no pair (counted)."""

    input: Annotated[str, Opt("-i")]
    """Comparison v2 file (ours or the released comparison_data_v2.json)."""
    to: Literal["trl", "gpt4llm-v1"]
    """trl (prompt, chosen, rejected, margin) or gpt4llm-v1 (user_input, completion_a, completion_b)."""
    output: Annotated[Path, Opt("-o")]
    """The pairs (JSONL)."""


@dataclass
class PairStats:
    prompts: int = 0
    pairs: int = 0
    ties: int = 0
    identical: int = 0
    prompts_without_pairs: int = 0


def load_comparisons(source: str | Path) -> list[Comparison]:
    out = []
    for row in io.read_rows(source):
        try:
            out.append(Comparison.model_validate(row.data))
        except ValidationError as e:
            raise UserError(f"{row.where}: not a comparison v2 record ({io.describe_validation_error(e)})") from e
    return out


def pairs_of(c: Comparison, stats: PairStats) -> list[tuple[ScoredResponse, ScoredResponse]]:
    """(higher, lower) for every pair with different scores and different texts."""
    rs, out = c.responses_and_scores, []
    for i, a in enumerate(rs):
        for b in rs[i + 1:]:
            if a.score == b.score:
                stats.ties += 1
            elif a.response == b.response:
                stats.identical += 1
            else:
                out.append((a, b) if a.score > b.score else (b, a))
    return out


def export(source: str | Path, to: str, output: str | Path) -> PairStats:
    if to not in ("trl", "gpt4llm-v1"):
        raise UserError(f"--to {to}: use trl or gpt4llm-v1")
    stats, rows = PairStats(), []
    for c in load_comparisons(source):
        stats.prompts += 1
        pairs = pairs_of(c, stats)
        stats.prompts_without_pairs += not pairs
        for hi, lo in pairs:
            if to == "trl":
                rows.append({"prompt": c.user_input, "chosen": hi.response, "rejected": lo.response,
                             "margin": hi.score - lo.score})
            else:
                rows.append({"user_input": c.user_input, "completion_a": hi.response, "completion_b": lo.response})
    stats.pairs = len(rows)
    io.write_records(output, rows)
    return stats
