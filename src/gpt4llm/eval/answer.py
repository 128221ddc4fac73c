"""``gpt4llm answer``: a model answers a question set, N samples per question if asked.

The prompt is the model's own: a checkpoint trained by gpt4llm carries its template object
(``gpt4llm_template.json``), which formats the question exactly as in training (DESIGN.md
principle 5); otherwise a model with a chat template gets the question as one user message,
and any other gets the Alpaca prompt. Output: FastChat's answer format plus ``meta``.

Questions with ``turns`` (FastChat llm_judge, MT-Bench's two turns) are answered turn by turn, each
turn seeing the earlier questions and the model's own answers (``next_turn``), and written in
llm_judge's model_answer format: ``choices: [{"index": 0, "turns": [...]}]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from gpt4llm import io
from gpt4llm.backends import DEFAULT_MODEL, parse_model
from gpt4llm.backends.base import GenParams, Request
from gpt4llm.backends.journal import Journal
from gpt4llm.calls import CallStats, Plan, plan_calls, run_calls
from gpt4llm.errors import UserError
from gpt4llm.eval.questions import load_questions
from gpt4llm.schemas import FastChatAnswer, Question
from gpt4llm.settings import Opt
from gpt4llm.stage import ModelCallSettings, journal_path, open_backend, write_errors
from gpt4llm.templates import ALPACA, TEMPLATES, PromptTemplate


class AnswerSettings(ModelCallSettings):
    """gpt4llm answer: a model answers a question set, N samples per question if asked (FastChat's answer format)."""

    questions: Annotated[str, Opt("--benchmark", "-b", pipeline=True)]
    """Question set: a named benchmark, FastChat question.jsonl, an Alpaca file or user-oriented JSONL."""
    output: Annotated[Path, Opt("-o", pipeline=True)]
    """FastChat answer JSONL."""
    model: Annotated[str, Opt("-m", pipeline=True)] = DEFAULT_MODEL
    """local:NAME|PATH (a gpt4llm checkpoint uses its saved template) or openai:MODEL."""
    model_id: Annotated[str | None, Opt(pipeline=True)] = None
    """model_id written in the answers (default: the model's name)."""
    template: Literal["auto", "alpaca", "chat"] = "auto"
    """auto (the saved template, else chat if the model has one, else alpaca), alpaca or chat."""
    samples: int = Field(1, ge=1)
    """Answers per question (best-of-N needs N > 1 and a temperature > 0; the paper ranks 5)."""
    base_model: Annotated[bool, Opt(cli=False)] = True
    """Pipeline: also answer with the student's base model, as the 'before' row of the tables."""
    temperature: float = Field(0.7, ge=0, le=2)
    """Sampling temperature (FastChat's default 0.7)."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling."""
    max_tokens: int = Field(512, ge=1)
    """Max answer tokens."""
    seed: int | None = None
    """Sampling seed, passed to the backend."""
    limit: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """Only the first N questions (pipeline: data.benchmarks.*.limit)."""
    dry_run: Annotated[bool, Opt(pipeline=True)] = False
    """Print the plan; call nothing."""

    def params(self) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed)


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


def conversation_so_far(questions: list[str], answers: list[str]) -> str:
    """The earlier exchanges of a multi-turn question, as the ``### Input:`` of a single-turn
    (Alpaca) prompt whose instruction is the new question."""
    return "\n\n".join(f"User: {q}\nAssistant: {a}" for q, a in zip(questions, answers))


def next_turn(q: Question, k: int, answers: list[str], template: PromptTemplate, params: GenParams) -> Request:
    """Turn len(answers) + 1 of ``q``: with a chat template, the conversation so far (each question a
    user message, each of the model's own answers an assistant message, then the new question);
    with the Alpaca template, the new question as the instruction and the conversation so far as
    the input."""
    n = len(answers)
    if template.name == "chat":
        messages = []
        for question, answer in zip(q.turns, answers):
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        req = Request(params=params, messages=messages + [{"role": "user", "content": q.turns[n]}], sample=k)
    else:
        req = Request(params=params, prompt=template.prompt(q.turns[n], conversation_so_far(q.turns[:n], answers)),
                      sample=k)
    req.tag = (q, k)
    return req


def answer_id(model_id: str, question_id, sample: int) -> str:
    return hashlib.sha256(f"{model_id}\0{question_id}\0{sample}".encode()).hexdigest()[:22]


def run(cfg: AnswerSettings) -> AnswerSummary | Plan:
    if cfg.samples > 1 and cfg.temperature == 0:
        raise UserError("--samples > 1 with --temperature 0 would give N identical answers; use a temperature > 0")
    questions = load_questions(cfg.questions)[: cfg.limit] if cfg.limit else load_questions(cfg.questions)
    template = choose_template(cfg.model, cfg.template)
    backend = open_backend(cfg.model, "--model", cfg.backend, dry_run=cfg.dry_run, quiet=cfg.quiet, output=cfg.output)
    prices = cfg.backend.prices_for(cfg.model)
    model_id = cfg.model_id or Path(backend.model).name
    params = cfg.params()
    requests = build_requests(questions, template, cfg.samples, params)
    turns_of = {(r.tag[0].question_id, r.tag[1]): [] for r in requests}  # the model's answers, turn by turn
    done: dict[tuple, object] = {}
    with backend, Journal(cfg.journal or journal_path(cfg.output)) as journal:
        if cfg.dry_run:  # later turns are planned with empty earlier answers (their prompts are longer)
            later = [next_turn(q, k, [""] * n, template, params) for q in questions if q.turns
                     for n in range(1, len(q.turns)) for k in range(cfg.samples)]
            return plan_calls(backend, journal, requests + later, prices=prices, rpm=cfg.backend.rpm,
                              tpm=cfg.backend.tpm)
        stats, turn, pending = None, 1, requests
        while pending:  # turn by turn: a turn's prompt holds the model's own earlier answers
            label = f"answer {model_id}" + (f" (turn {turn})" if turn > 1 else "")
            got = run_calls(backend, journal, pending, label=label, quiet=cfg.quiet, prices=prices)
            stats = got if stats is None else stats.merge(got)
            more = []
            for req in pending:
                q, k = req.tag
                e = got.entries.get(req.key)
                if e is None or not e.ok:
                    done[(q.question_id, k)] = (turn, e.error if e else "not run")
                    continue
                turns_of[(q.question_id, k)].append(e)
                if q.turns and len(q.turns) > turn:
                    more.append(next_turn(q, k, [x.text for x in turns_of[(q.question_id, k)]], template, params))
            pending, turn = more, turn + 1
    answers, errors = [], []
    for req in requests:
        q, k = req.tag
        if (q.question_id, k) in done:
            failed_turn, why = done[(q.question_id, k)]
            errors.append({"question_id": q.question_id, "sample": k, "error": why,
                           **({"turn": failed_turn} if q.turns else {})})
            continue
        entries = turns_of[(q.question_id, k)]
        meta = {"sample": k, "instruction": q.instruction, "input": q.input, "template": template.name,
                "params": params.as_dict(), "finish_reason": entries[-1].finish_reason,
                "usage": {"prompt_tokens": sum(e.prompt_tokens or 0 for e in entries),
                          "completion_tokens": sum(e.completion_tokens or 0 for e in entries)},
                "model": f"{backend.kind}:{backend.model}"}
        if q.category:
            meta["category"] = q.category
        aid = answer_id(model_id, q.question_id, k)
        if q.turns:  # FastChat llm_judge's model_answer format
            meta["finish_reasons"] = [e.finish_reason for e in entries]
            answers.append({"question_id": q.question_id, "answer_id": aid, "model_id": model_id,
                            "choices": [{"index": 0, "turns": [e.text for e in entries]}], "meta": meta})
        else:
            answers.append(FastChatAnswer(question_id=q.question_id, answer_id=aid, model_id=model_id,
                                          text=entries[0].text, meta=meta).model_dump())
    io.write_records(cfg.output, answers, "jsonl")
    write_errors(cfg.output, errors)
    return AnswerSummary(cfg.output, len(answers), len(errors), template.name, stats)
