"""``gpt4llm eval rouge``: ROUGE of each model's answers against the ground truth, grouped by the
ground truth's length in whitespace words (0-2, 3-5, 6-10, >10, and all), as the paper reports
Unnatural Instructions (PAPER.md section 5). Scores are rouge-score's F measures (no stemming,
the package default); each bucket's figure is the mean over its instances.

The output rows have the paper's released result format (``Length``, ``NumInstance``, ``Model``,
``rouge1``, ``rouge2``, ``rougeL``), so published and new numbers sit in one table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from gpt4llm import io, plots
from gpt4llm.errors import UserError
from gpt4llm.schemas import record_id
from gpt4llm.settings import Opt, Settings

BUCKETS = [("0-2", 0, 2), ("3-5", 3, 5), ("6-10", 6, 10), (">10", 11, None)]
METRICS = ("rouge1", "rouge2", "rougeL")


def bucket_of(text: str) -> str:
    n = len(text.split())
    for name, lo, hi in BUCKETS:
        if n >= lo and (hi is None or n <= hi):
            return name
    raise AssertionError(n)


def load_references(path: str, field: str | None = None) -> dict[Any, str]:
    """{id: ground truth}: Alpaca-like rows (``label`` preferred over ``output``: GPT-4-LLM's
    Unnatural Instructions file keeps GPT-4's answer in ``output`` and the truth in ``label``),
    FastChat-style rows with ``question_id`` and ``reference``, or the Unnatural Instructions core
    format (``instruction`` + ``instances[{input, output}]``, one reference per instance)."""
    refs: dict[Any, str] = {}
    for row in io.read_rows(path):
        d = row.data
        if not isinstance(d, dict):
            raise UserError(f"{row.where}: expected a JSON object")
        if isinstance(d.get("instances"), list) and "instruction" in d:
            for inst in d["instances"]:
                refs[record_id(d["instruction"], inst.get("input") or "")] = inst.get("output")
            continue
        key = d.get("question_id", d.get("id"))
        if key is None and "instruction" in d:
            key = record_id(d["instruction"], d.get("input") or "")
        truth = d.get(field) if field else next((d[k] for k in ("label", "reference", "output") if isinstance(d.get(k), str)), None)
        if key is None or not isinstance(truth, str):
            raise UserError(f"{row.where}: no id and ground truth (expected instruction/input with label or output, "
                            "question_id with reference, or instruction with instances)")
        refs[key] = truth
    return refs


def load_predictions(path: str) -> tuple[str, dict[Any, str]]:
    preds, name = {}, None
    for row in io.read_rows(path):
        d = row.data
        if isinstance(d, dict) and "question_id" in d and isinstance(d.get("text"), str):
            if (d.get("meta") or {}).get("sample", 0) == 0:
                preds.setdefault(d["question_id"], d["text"])
                name = name or d.get("model_id")
        elif isinstance(d, dict) and isinstance(d.get("instruction"), str) and isinstance(d.get("output"), str):
            preds[d.get("id") or record_id(d["instruction"], d.get("input") or "")] = d["output"]
            name = name or (d.get("meta") or {}).get("model")
        else:
            raise UserError(f"{row.where}: not a prediction (FastChat answer or Alpaca record with output)")
    return name or Path(path).stem, preds


class RougeSettings(Settings):
    """gpt4llm eval rouge: ROUGE-1/2/L F of answers against the ground truth, by its length (0-2, 3-5, 6-10, >10, all)."""

    predictions: Annotated[list[str], Opt("-p", pipeline=True)]
    """A model's answers (FastChat or Alpaca); repeat per model."""
    references: Annotated[str, Opt("-r", pipeline=True)]
    """Ground truth: Alpaca with label/output, or Unnatural Instructions core format."""
    output: Annotated[Path, Opt("-o", pipeline=True)]
    """Result table (JSON, the paper's format); chart beside it."""
    reference_model: Annotated[str | None, Opt(pipeline=True)] = None
    """The model the chart's differences are measured against (default: the first)."""
    reference_field: Annotated[str | None, Opt(pipeline=True)] = None
    """Field holding the ground truth (default: label, reference, output)."""
    allow_missing: Annotated[bool, Opt(pipeline=True)] = False
    """Score what is there when a model lacks some answers (else stop and list them)."""


def score(preds: dict, refs: dict) -> list[dict]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=False)
    rows = []
    for key, truth in refs.items():
        if key in preds:
            s = scorer.score(truth, preds[key])
            rows.append({"id": key, "bucket": bucket_of(truth), **{m: s[m].fmeasure for m in METRICS}})
    return rows


def aggregate(rows: list[dict], model: str) -> list[dict]:
    out = []
    for name in [b[0] for b in BUCKETS] + ["ALL"]:
        sel = rows if name == "ALL" else [r for r in rows if r["bucket"] == name]
        out.append({"Length": name, "NumInstance": len(sel), "Model": model,
                    **{m: (sum(r[m] for r in sel) / len(sel) if sel else None) for m in METRICS}})
    return out


def run(cfg: RougeSettings) -> dict:
    refs = load_references(cfg.references, cfg.reference_field)
    table, names = [], []
    for path in cfg.predictions:
        name, preds = load_predictions(path)
        missing = [k for k in refs if k not in preds]
        if missing and not cfg.allow_missing:
            raise UserError(f"{path}: no prediction for {len(missing)} of {len(refs)} references (ids "
                            f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}); pass --allow-missing")
        if name in names:
            raise UserError(f"{path}: model name {name!r} appears twice")
        names.append(name)
        table += aggregate(score(preds, refs), name)
    ref_model = cfg.reference_model or names[0]
    if ref_model not in names:
        raise UserError(f"--reference-model {ref_model}: not among the models ({', '.join(names)})")
    io.write_json(cfg.output, table)
    fig = plots.rouge_buckets(table, Path(f"{cfg.output}.chart"), ref_model)
    return {"table": table, "models": names, "reference_model": ref_model, "figure": fig}
