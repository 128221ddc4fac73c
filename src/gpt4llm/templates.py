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

TEMPLATE_FILE = "gpt4llm_template.json"


def _prompt_file(name: str) -> str:
    return resources.files("gpt4llm.prompts").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptTemplate:
    """An instruction template with and without an input field."""

    name: str
    prompt_input: str
    prompt_no_input: str

    def prompt(self, instruction: str, input: str = "") -> str:
        """The prompt text; the no-input form is used when ``input`` is missing or ""."""
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

    @property
    def sha256(self) -> str:
        """Hash of the template text, recorded in provenance."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TEMPLATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "PromptTemplate | None":
        """The template saved with a model, or None when the directory has none."""
        path = Path(directory) / TEMPLATE_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))


ALPACA = PromptTemplate(
    name="alpaca",
    prompt_input=_prompt_file("alpaca_input.txt"),
    prompt_no_input=_prompt_file("alpaca_no_input.txt"),
)

TEMPLATES = {"alpaca": ALPACA}
