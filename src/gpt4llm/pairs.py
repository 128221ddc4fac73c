"""Comparison records -> preference pairs (PAPER.md section 3), and ``compare export``.

From a prompt with K scored responses, every pair (y_l, y_h) with s_l < s_h: C(K,2) pairs
minus ties. Ties give no pair and are counted; so are pairs whose two texts are identical (the
released v2 data holds 1,665 of them), which teach nothing. Reads our v2 output and the
released ``comparison_data_v2.json`` alike.

``--to trl-kto`` writes one row per scored response (``prompt, completion, label``) for TRL's
KTO. GPT-4's scores cluster at the top (89.5% of its own answers are 9), so a fixed threshold
labels almost everything of a good source desirable and almost nothing of a weak one. The label
is relative to the prompt's other responses instead: desirable when the response scores above
the mean of the others, undesirable when below, left out when equal (nothing to learn). On the
paper's released scores (``cmp_data_scores.json``, triples taken index by index) that gives 64.7%
desirable / 35.3% undesirable and leaves out 4.9%; the export reports its own balance and the
``desirable_weight`` / ``undesirable_weight`` that balance it in KTO's loss.
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
    to: Literal["trl", "gpt4llm-v1", "trl-kto"]
    """trl (prompt, chosen, rejected, margin), gpt4llm-v1 (user_input, completion_a, completion_b) or trl-kto (prompt, completion, label: relative to the prompt's other responses)."""
    output: Annotated[Path, Opt("-o")]
    """The pairs (JSONL)."""


@dataclass
class PairStats:
    prompts: int = 0
    pairs: int = 0
    ties: int = 0
    identical: int = 0
    prompts_without_pairs: int = 0
    desirable: int = 0
    undesirable: int = 0
    equal_to_the_others: int = 0

    def kto_weights(self) -> dict[str, float]:
        """KTO's weights that balance the labels: desirable_weight x n_D = undesirable_weight x n_U."""
        if not (self.desirable and self.undesirable):
            return {"desirable_weight": 1.0, "undesirable_weight": 1.0}
        if self.desirable >= self.undesirable:
            return {"desirable_weight": 1.0, "undesirable_weight": round(self.desirable / self.undesirable, 3)}
        return {"desirable_weight": round(self.undesirable / self.desirable, 3), "undesirable_weight": 1.0}


def kto_labels(scores: list[float]) -> list[bool | None]:
    """Per response: True above the mean of the prompt's other responses, False below, None equal."""
    out = []
    for i, s in enumerate(scores):
        others = scores[:i] + scores[i + 1:]
        mean = sum(others) / len(others)
        out.append(True if s > mean else False if s < mean else None)
    return out


def load_comparisons(source: str | Path) -> list[Comparison]:
    """Comparison v2 records: a file, or a named dataset (comparison-gpt4-v2)."""
    from gpt4llm.eval.benchmarks import resolve

    out = []
    for row in io.read_rows(resolve(str(source))):
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
    if to not in ("trl", "gpt4llm-v1", "trl-kto"):
        raise UserError(f"--to {to}: use trl, gpt4llm-v1 or trl-kto")
    stats, rows = PairStats(), []
    for c in load_comparisons(source):
        stats.prompts += 1
        if to == "trl-kto":
            rs = c.responses_and_scores
            if len(rs) < 2:
                stats.prompts_without_pairs += 1
                continue
            for r, label in zip(rs, kto_labels([x.score for x in rs])):
                if label is None:
                    stats.equal_to_the_others += 1
                    continue
                stats.desirable += label
                stats.undesirable += not label
                rows.append({"prompt": c.user_input, "completion": r.response, "label": label})
            continue
        pairs = pairs_of(c, stats)
        stats.prompts_without_pairs += not pairs
        for hi, lo in pairs:
            if to == "trl":
                rows.append({"prompt": c.user_input, "chosen": hi.response, "rejected": lo.response,
                             "margin": hi.score - lo.score})
            else:
                rows.append({"user_input": c.user_input, "completion_a": hi.response, "completion_b": lo.response})
    stats.pairs = len(rows) if to != "trl-kto" else 0
    io.write_records(output, rows)
    return stats
