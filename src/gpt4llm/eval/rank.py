"""``gpt4llm rank``: a reward model scores N sampled answers per question (best-of-N).

Each answer gets ``meta.reward`` and ``meta.rank`` (1 = the highest reward of its question).
``--select best`` writes the rank-1 answer per question in FastChat's answer format: the paper's
"R1"; ``--group k`` writes the rank-k answers, for its ranking-group comparison (groups 1..5).
The reward model reads the Alpaca prompt + the answer, as it was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.eval.questions import load_questions
from gpt4llm.settings import Opt, Settings
from gpt4llm.templates import ALPACA, PromptTemplate


class RankSettings(Settings):
    """gpt4llm rank: a reward model scores sampled answers (reward and rank per answer, best-of-N, ranking groups)."""

    reward_model: Annotated[Path, Opt("-r", pipeline=True)]
    """A checkpoint from gpt4llm train rm."""
    input: Annotated[str, Opt("-i", pipeline=True)]
    """Answers with N samples per question (answer --samples N)."""
    output: Annotated[Path, Opt("-o", pipeline=True)]
    """Ranked answers (FastChat format, with meta.reward and meta.rank)."""
    questions: Annotated[str | None, Opt(pipeline=True)] = None
    """The question set, if the answers lack their instruction."""
    select: Annotated[Literal["best"] | None, Opt(pipeline=True)] = None
    """best: the top-ranked answer per question (the paper's R1)."""
    group: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """k: the rank-k answer per question (the paper's groups 1..5)."""
    batch_size: int = Field(8, ge=1)
    """Answers scored per forward pass."""
    max_length: int = Field(512, ge=8)
    """Tokens of prompt + answer the reward model reads (as in training)."""
    model_id_suffix: Annotated[str | None, Opt(pipeline=True)] = None
    """Appended to model_id (default: R1 with --select best, rank{k} with --group k)."""


def load_reward_model(path: Path):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"--reward-model {path}: not a checkpoint directory (no config.json)")
    config = AutoConfig.from_pretrained(path)
    if getattr(config, "num_labels", None) != 1 or not any(a.endswith("ForSequenceClassification")
                                                            for a in (config.architectures or [])):
        raise UserError(f"--reward-model {path}: not a reward model (expected a sequence-classification "
                        "checkpoint with one output, as gpt4llm train rm writes); got "
                        f"{', '.join(config.architectures or ['unknown'])}")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    return tok, model, PromptTemplate.load(path) or ALPACA


def score_texts(tok, model, texts: list[str], batch_size: int, max_length: int) -> list[float]:
    import torch

    tok.padding_side = "right"
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            out += model(**enc).logits.squeeze(-1).float().tolist()
    return out


def run(cfg: RankSettings) -> dict:
    if cfg.select not in (None, "best"):
        raise UserError(f"--select {cfg.select}: only 'best' (use --group k for the rank-k answers)")
    rows = [r.data for r in io.read_rows(cfg.input)]
    questions = {q.question_id: q for q in load_questions(cfg.questions)} if cfg.questions else {}
    tok, model, template = load_reward_model(cfg.reward_model)
    texts = []
    for i, a in enumerate(rows):
        meta = a.get("meta") or {}
        if not isinstance(a.get("text"), str):
            raise UserError(f"{cfg.input}:{i + 1}: not a one-turn FastChat answer (question_id, text): the reward "
                            "model ranks one response per question (multi-turn answers, such as MT-Bench's, are not ranked)")
        if a.get("question_id") in questions:
            q = questions[a["question_id"]]
            instruction, inp = q.instruction, q.input
        elif "instruction" in meta:
            instruction, inp = meta["instruction"], meta.get("input", "")
        else:
            raise UserError(f"{cfg.input}:{i + 1}: answer {a.get('answer_id')} carries no instruction; pass --questions")
        texts.append(template.prompt(instruction, inp) + a["text"])
    rewards = score_texts(tok, model, texts, cfg.batch_size, cfg.max_length)
    by_q: dict = {}
    for a, r in zip(rows, rewards):
        a.setdefault("meta", {})["reward"] = r
        by_q.setdefault(a["question_id"], []).append(a)
    for answers in by_q.values():
        for rank, a in enumerate(sorted(answers, key=lambda x: -x["meta"]["reward"]), start=1):
            a["meta"]["rank"] = rank
    out = rows
    if cfg.select == "best" or cfg.group:
        k = 1 if cfg.select == "best" else cfg.group
        suffix = cfg.model_id_suffix or ("R1" if cfg.select == "best" else f"rank{k}")
        out = []
        for answers in by_q.values():
            pick = next((a for a in answers if a["meta"]["rank"] == k), None)
            if pick is not None:
                # One answer per question now: sample 0 of the new model (judge and rouge read sample 0).
                meta = {**pick["meta"], "sample": 0, "drawn_as_sample": pick["meta"].get("sample")}
                out.append({**pick, "model_id": f"{pick['model_id']}-{suffix}", "meta": meta})
    io.write_records(cfg.output, out)
    sizes = sorted({len(v) for v in by_q.values()})
    return {"questions": len(by_q), "answers": len(rows), "samples_per_question": sizes, "written": len(out)}
