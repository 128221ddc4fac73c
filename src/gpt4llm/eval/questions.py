"""Question sets for ``answer`` and ``eval``: FastChat ``question.jsonl`` (Vicuna-80), Alpaca files,
and Self-Instruct's user-oriented format (``id, instruction, instances[{input, output}]``)."""

from __future__ import annotations

from gpt4llm import io
from gpt4llm.errors import UserError
from gpt4llm.schemas import Question, record_id


def _question(row: dict, where: str) -> Question:
    if "question_id" in row:  # FastChat: 2023 "text", or later "turns"
        text = row.get("text") if "text" in row else (row.get("turns") or [None])[0]
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
