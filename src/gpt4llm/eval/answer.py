"""``gpt4llm answer``: a model answers a question set, N samples per question if asked.

The prompt is the model's own: a checkpoint trained by gpt4llm carries its template object
(``gpt4llm_template.json``), which formats the question exactly as in training (DESIGN.md
principle 5); otherwise a model with a chat template gets the question as one user message,
and any other gets the Alpaca prompt. Output: FastChat's answer format plus ``meta``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL, parse_model
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats, Plan, plan_calls, run_calls
from gpt4llm.errors import UserError
from gpt4llm.eval.questions import load_questions
from gpt4llm.generate import errors_path, journal_path, open_backend
from gpt4llm.schemas import FastChatAnswer, Question
from gpt4llm.templates import ALPACA, TEMPLATES, PromptTemplate


@dataclass
class AnswerConfig:
    questions: str
    """Question set: FastChat question.jsonl, Alpaca file, or user-oriented JSONL."""
    output: Path
    """FastChat answer JSONL."""
    model: str = DEFAULT_MODEL
    """local:NAME|PATH (a gpt4llm checkpoint uses its saved template) or openai:MODEL."""
    model_id: str | None = None
    """The model_id written in answers (default: the model's name)."""
    template: str = "auto"
    """auto (the saved template, else chat when the model has one, else alpaca), alpaca or chat."""
    samples: int = 1
    """Answers per question (best-of-N needs N > 1 and temperature > 0)."""
    params: GenParams = field(default_factory=lambda: GenParams(temperature=0.7, top_p=1.0, max_tokens=512))
    """Decoding parameters (FastChat's answer default: temperature 0.7)."""
    limit: int | None = None
    journal: Path | None = None
    backend_options: dict = field(default_factory=dict)
    dry_run: bool = False
    quiet: bool = False


@dataclass
class AnswerSummary:
    output: Path
    written: int
    failed: int
    template: str
    calls: CallStats


def choose_template(model: str, requested: str) -> PromptTemplate:
    """The template a model is prompted with (see the module docstring)."""
    spec = parse_model(model, "--model")
    if requested != "auto":
        if requested not in TEMPLATES:
            raise UserError(f"--template {requested}: use auto, {', '.join(TEMPLATES)}")
        return TEMPLATES[requested]
    if spec.backend == "local" and Path(spec.name).is_dir() and (saved := PromptTemplate.load(spec.name)):
        return saved
    if spec.backend == "local":
        from gpt4llm.backends.local import load_model

        tok, _ = load_model(spec.name)
        return TEMPLATES["chat"] if tok.chat_template else ALPACA
    return TEMPLATES["chat"]  # an endpoint applies its own chat template to a user message


def build_requests(questions: list[Question], template: PromptTemplate, samples: int, params: GenParams) -> list[Request]:
    out = []
    for q in questions:
        for k in range(samples):
            if template.name == "chat":
                req = Request(params=params, messages=template.chat_messages(q.instruction, q.input), sample=k)
            else:  # the raw prompt, exactly as the model was trained on it
                req = Request(params=params, prompt=template.prompt(q.instruction, q.input), sample=k)
            req.tag = (q, k)
            out.append(req)
    return out


def answer_id(model_id: str, question_id, sample: int) -> str:
    return hashlib.sha256(f"{model_id}\0{question_id}\0{sample}".encode()).hexdigest()[:22]


def run(cfg: AnswerConfig) -> AnswerSummary | Plan:
    if cfg.samples < 1:
        raise UserError(f"--samples {cfg.samples}: must be at least 1")
    if cfg.samples > 1 and cfg.params.temperature == 0:
        raise UserError("--samples > 1 with --temperature 0 would give N identical answers; use a temperature > 0")
    questions = load_questions(cfg.questions)[: cfg.limit] if cfg.limit else load_questions(cfg.questions)
    template = choose_template(cfg.model, cfg.template)
    backend = open_backend(cfg.model, "--model", cfg.backend_options, cfg.dry_run)
    model_id = cfg.model_id or Path(backend.model).name
    requests = build_requests(questions, template, cfg.samples, cfg.params)
    with Journal(cfg.journal or journal_path(cfg.output)) as journal:
        if cfg.dry_run:
            return plan_calls(backend, journal, requests)
        stats = run_calls(backend, journal, requests, label=f"answer {model_id}", quiet=cfg.quiet)
    answers, errors = [], []
    for req in requests:
        q, k = req.tag
        e = stats.entries.get(req.key)
        if e is None or not e.ok:
            errors.append({"question_id": q.question_id, "sample": k, "error": e.error if e else "not run"})
            continue
        meta = {"sample": k, "instruction": q.instruction, "input": q.input, "template": template.name, "params": cfg.params.as_dict(), "finish_reason": e.finish_reason,
                "usage": {"prompt_tokens": e.prompt_tokens, "completion_tokens": e.completion_tokens},
                "model": f"{backend.kind}:{backend.model}"}
        if q.category:
            meta["category"] = q.category
        answers.append(FastChatAnswer(question_id=q.question_id, answer_id=answer_id(model_id, q.question_id, k),
                                      model_id=model_id, text=e.text, meta=meta).model_dump())
    io.write_records(cfg.output, answers, "jsonl")
    err = errors_path(cfg.output)
    if errors:
        io.write_records(err, errors, "jsonl")
    elif err.exists():
        err.unlink()
    return AnswerSummary(cfg.output, len(answers), len(errors), template.name, stats)
