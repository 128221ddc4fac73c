"""Question sets for ``answer`` and ``eval``: FastChat ``question.jsonl`` (Vicuna-80), Alpaca files,
and Self-Instruct's user-oriented format (``id, instruction, instances[{input, output}]``)."""

from __future__ import annotations

from typing import Any

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import Question, record_id


def _question(row: dict, where: str) -> Question:
    if "question_id" in row:  # FastChat: 2023 "text", or llm_judge's "turns" (MT-Bench: two)
        turns = row.get("turns")
        if "text" not in row and turns is not None:
            if not (isinstance(turns, list) and turns and all(isinstance(t, str) and t.strip() for t in turns)):
                raise UserError(f"{where}: 'turns' must be a list of non-empty strings")
            return Question(question_id=row["question_id"], instruction=turns[0], category=row.get("category"),
                            turns=turns)
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: FastChat question without 'text' (or 'turns')")
        return Question(question_id=row["question_id"], instruction=text, category=row.get("category"))
    if "instances" in row and "instruction" in row:  # Self-Instruct user-oriented
        inst = (row["instances"] or [{}])[0]
        return Question(question_id=row.get("id") or record_id(row["instruction"], inst.get("input", "")),
                        instruction=row["instruction"], input=inst.get("input") or "",
                        category=row.get("motivation_app"), reference=inst.get("output"))
    if "instruction" in row:  # Alpaca (Unnatural Instructions adds 'label')
        instruction, input = row["instruction"], row.get("input") or ""
        if not isinstance(instruction, str) or not instruction.strip() or not isinstance(input, str):
            raise UserError(f"{where}: 'instruction' must be a non-empty string and 'input' a string")
        ref = row.get("output") if row.get("output") is not None else row.get("label")
        return Question(question_id=row.get("id") or record_id(instruction, input), instruction=instruction,
                        input=input, category=row.get("category"), reference=ref)
    raise UserError(f"{where}: not a question: expected FastChat (question_id, text), Alpaca (instruction, input) "
                    "or user-oriented (id, instruction, instances)")


def load_questions(source: str) -> list[Question]:
    """A question file, or a named benchmark from the cache (``gpt4llm benchmarks``)."""
    from gpt4llm.eval.benchmarks import resolve

    source = resolve(source)
    questions, seen = [], {}
    for row in io.read_rows(source):
        if not isinstance(row.data, dict):
            raise UserError(f"{row.where}: expected a JSON object")
        q = _question(row.data, row.where)
        if q.question_id in seen:
            raise UserError(f"{row.where}: duplicate question_id {q.question_id!r} (first at {seen[q.question_id]})")
        seen[q.question_id] = row.where
        questions.append(q)
    if not questions:
        raise UserError(f"{source}: no questions")
    return questions


def turns_of(d: dict) -> list[str] | None:
    """The turns of a FastChat llm_judge answer (``choices[0].turns``), else None."""
    choices = d.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            return turns
    return None


def load_answer_file(path: str, question_ids: set, allow_missing: bool, what: str = "answer",
                     verb: str = "judge") -> tuple[str, dict[Any, dict]]:
    """(model_id, {question_id: answer}) of a FastChat answer file (the 2023 ``text`` or llm_judge's
    ``choices[0].turns``), the first sample per question; each answer gets ``turns`` (a one-turn
    answer: [text]). Questions without an answer are an error unless ``allow_missing``."""
    from pathlib import Path

    rows, model_id = {}, None
    for row in io.read_rows(path):
        d = row.data
        turns = turns_of(d) if isinstance(d, dict) else None
        if turns is None and isinstance(d, dict) and isinstance(d.get("text"), str):
            turns = [d["text"]]
        if turns is None or "question_id" not in d:
            raise UserError(f"{row.where}: not a FastChat answer (question_id with text, or choices[0].turns)")
        if d["question_id"] in rows or (d.get("meta") or {}).get("sample", 0) != 0:
            continue
        rows[d["question_id"]] = {**d, "turns": turns}
        model_id = model_id or d.get("model_id")
    missing = sorted((q for q in question_ids if q not in rows), key=str)
    if missing and not allow_missing:
        shown = ", ".join(map(str, missing[:10]))
        raise UserError(f"{path}: no {what} for {len(missing)} of {len(question_ids)} questions (question_id {shown}"
                        f"{' ...' if len(missing) > 10 else ''}); pass --allow-missing to {verb} what is there")
    return str(model_id or Path(path).stem), rows
