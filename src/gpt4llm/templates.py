"""Prompt-template objects (DESIGN.md principle 5).

One object per format formats the teacher's requests, the SFT examples (and their loss mask,
in ``train``), the prompts of ``answer``/``serve``, and is saved with a trained model, so that
training and inference can never disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100  # label of a token that is not trained (prompt, padding)

TEMPLATE_FILE = "gpt4llm_template.json"


def _prompt_file(name: str) -> str:
    return resources.files("gpt4llm.prompts").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptTemplate:
    """An instruction template with and without an input field."""

    name: str
    prompt_input: str = ""
    prompt_no_input: str = ""

    def prompt(self, instruction: str, input: str = "", tokenizer: Any = None) -> str:
        """The prompt text; the no-input form is used when ``input`` is missing or "".

        The ``chat`` template renders the tokenizer's own chat template (one user turn, then the
        generation prompt), so it needs the tokenizer.
        """
        if self.name == "chat":
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError("the chat template needs a tokenizer that has a chat template")
            return tokenizer.apply_chat_template(self.chat_messages(instruction, input), tokenize=False,
                                                 add_generation_prompt=True)
        if input:
            return self.prompt_input.format_map({"instruction": instruction, "input": input})
        return self.prompt_no_input.format_map({"instruction": instruction})

    def messages(self, instruction: str, input: str = "", system: str | None = None) -> list[dict]:
        """The prompt as ONE user message, no system prompt (PAPER.md section 1).

        ``system`` is only set for non-English answers (``generate --language``).
        """
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": self.prompt(instruction, input)})
        return msgs

    @staticmethod
    def chat_messages(instruction: str, input: str = "") -> list[dict]:
        return [{"role": "user", "content": f"{instruction}\n\n{input}" if input else instruction}]

    def encode(self, tokenizer: Any, instruction: str, input: str, output: str,
               finished: bool = True) -> dict[str, Any]:
        """Token ids and labels of one training example: loss on the target tokens only.

        ``alpaca``: target = output + EOS (PAPER.md section 4). ``chat``: target = the assistant
        turn as the chat template closes it. Prompt and target are tokenized as ONE sequence and
        the first len(prompt tokens) labels are masked. When a tokenizer merges tokens across
        the boundary (the prompt's tokens are then not a prefix of the whole's), the mask would
        shift: then the prompt and the target are tokenized apart and concatenated, which is
        also exactly what the model sees when it answers (prompt tokens, then its own tokens).
        BOS: as many as the tokenizer adds (0 or 1), never two. ``finished`` False: an answer cut at a
        token limit (a sampled one, ``train iterate``), trained as it was written: no EOS after it
        (nor, with ``chat``, the template's closing of the assistant turn).
        """
        if self.name == "chat":
            prompt = self.prompt(instruction, input, tokenizer)
            if not finished:
                return encode_text(tokenizer, prompt, output, special=False, eos=False)
            full = tokenizer.apply_chat_template(
                self.chat_messages(instruction, input) + [{"role": "assistant", "content": output}], tokenize=False)
            if not full.startswith(prompt):
                raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
            return encode_text(tokenizer, prompt, full[len(prompt):], special=False, eos=False)
        return encode_text(tokenizer, self.prompt(instruction, input), output, special=True, eos=finished)

    def encode_prompt(self, tokenizer: Any, prompt: str, output: str, finished: bool = True) -> dict[str, Any]:
        """``encode`` for a prompt already written in this template (a comparison's ``user_input``):
        the prompt is used as it is, never wrapped twice."""
        if self.name == "chat":
            instruction, input = ALPACA.parse(prompt) or (prompt, "")
            return self.encode(tokenizer, instruction, input, output, finished)
        return encode_text(tokenizer, prompt, output, special=True, eos=finished)

    def parse(self, prompt: str) -> tuple[str, str] | None:
        """(instruction, input) of a prompt written in this (instruction) template, or None."""
        if self.name == "chat":
            return None
        for form, has_input in ((self.prompt_input, True), (self.prompt_no_input, False)):
            head, _, rest = form.partition("{instruction}")
            if not prompt.startswith(head):
                continue
            body = prompt[len(head):]
            if has_input:
                mid, _, tail = rest.partition("{input}")
                if mid in body and body.rstrip().endswith(tail.rstrip()):
                    instruction, _, inp = body.partition(mid)
                    return instruction, inp[: len(inp.rstrip()) - len(tail.rstrip())]
            elif body.rstrip().endswith(rest.rstrip()) and "\n\n### Input:\n" not in body:
                return body[: len(body.rstrip()) - len(rest.rstrip())], ""
        return None

    @property
    def sha256(self) -> str:
        """Hash of the template text, recorded in provenance."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def jinja(self) -> str | None:
        """A tokenizer chat template that renders this template, so a server given only chat messages
        (``vllm serve`` by hand, /v1/chat/completions) builds the prompt the student was trained on:
        each user message is the instruction of the no-input form, each assistant message is followed
        by EOS. None for ``chat`` (the tokenizer's own template is kept)."""
        if self.name == "chat":
            return None
        before, after = self.prompt_no_input.split("{instruction}")
        return ("{% for m in messages %}{% if m['role'] == 'user' %}{% raw %}" + before + "{% endraw %}"
                "{{ m['content'] }}{% raw %}" + after + "{% endraw %}{% elif m['role'] == 'assistant' %}"
                "{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TEMPLATE_FILE
        from gpt4llm.io import write_json

        write_json(path, asdict(self))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "PromptTemplate | None":
        """The template saved with a model, or None when the directory has none."""
        path = Path(directory) / TEMPLATE_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def encode_text(tokenizer: Any, prompt: str, target: str, special: bool, eos: bool) -> dict[str, Any]:
    """Token ids and labels of prompt + target (+ the EOS token), the prompt masked (see ``encode``)."""
    p_ids = _dedupe_bos(tokenizer, tokenizer(prompt, add_special_tokens=special)["input_ids"])
    ids = _dedupe_bos(tokenizer, tokenizer(prompt + target, add_special_tokens=special)["input_ids"])
    merged = ids[: len(p_ids)] != p_ids
    if merged:
        ids = p_ids + tokenizer(target, add_special_tokens=False)["input_ids"]
    ids = ids + ([tokenizer.eos_token_id] if eos else [])
    labels = [IGNORE_INDEX] * len(p_ids) + ids[len(p_ids):]
    return {"input_ids": ids, "labels": labels, "prompt_len": len(p_ids), "boundary_merge": merged}


def _dedupe_bos(tokenizer: Any, ids: list[int]) -> list[int]:
    """Drop a second leading BOS (a tokenizer that adds one to a text that already has one)."""
    bos = tokenizer.bos_token_id
    while bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


ALPACA = PromptTemplate(
    name="alpaca",
    prompt_input=_prompt_file("alpaca_input.txt"),
    prompt_no_input=_prompt_file("alpaca_no_input.txt"),
)
CHAT = PromptTemplate(name="chat")

TEMPLATES = {"alpaca": ALPACA, "chat": CHAT}
