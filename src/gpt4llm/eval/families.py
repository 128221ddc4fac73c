"""Self-preference: is a judge grading its own kind? Model families, and the flags they raise.

LLM judges favour answers of their own model or family (Zheng et al. 2023, "Judging LLM-as-a-Judge",
section 3.3: GPT-4 favoured itself by 10%, Claude-v1 by 25% in win rate). gpt4llm flags every pair of
a judge and a judged model (or the reference) with the same name, or of the same family, and reports
that model's win rate by each judge of the panel, so the reader can see whether the related judge
stands apart from the others.

A name is compared without its backend (``openai:``), directory (``local:runs/x`` -> ``x``) and case.
The family table (first match, on the lower-cased name; ``*`` any text):

==================  ====================================================================================
openai-gpt          gpt-*, chatgpt*, o1*, o3*, o4*, text-davinci*, davinci*, gpt35*
anthropic           claude*
llama               llama*, meta-llama*, codellama*, vicuna*, alpaca*, koala*, tulu*, wizardlm*
qwen                qwen*, qwq*
mistral             mistral*, mixtral*, ministral*, codestral*, zephyr*
google              gemma*, gemini*, bard*, palm*, flan-t5*, t5-*
smollm              smollm*
microsoft-phi       phi-*, phi3*, phi4*
deepseek            deepseek*
cohere              command*, c4ai*, aya*
falcon              falcon*
yi                  yi-*
==================  ====================================================================================

Vicuna, Alpaca, Koala, Tulu and WizardLM are fine-tuned LLaMA models, hence llama; Zephyr is a
fine-tuned Mistral. A study's own models are named by their role (``student-en``, ``teacher``):
``--family PATTERN=FAMILY`` (repeat; checked before the table) says what they are, e.g.
``--family 'student-*=smollm'``; the pipeline adds these itself from ``models:``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from gpt4llm.errors import UserError

TABLE: list[tuple[str, str]] = [(p, fam) for fam, pats in (
    ("openai-gpt", "gpt-* chatgpt* o1* o3* o4* text-davinci* davinci* gpt35*"),
    ("anthropic", "claude*"),
    ("llama", "llama* meta-llama* codellama* vicuna* alpaca* koala* tulu* wizardlm*"),
    ("qwen", "qwen* qwq*"),
    ("mistral", "mistral* mixtral* ministral* codestral* zephyr*"),
    ("google", "gemma* gemini* bard* palm* flan-t5* t5-*"),
    ("smollm", "smollm*"),
    ("microsoft-phi", "phi-* phi3* phi4*"),
    ("deepseek", "deepseek*"),
    ("cohere", "command* c4ai* aya*"),
    ("falcon", "falcon*"),
    ("yi", "yi-*"),
) for p in pats.split()]


def name_of(model: str) -> str:
    """``openai:gpt-4o`` -> ``gpt-4o``; ``local:runs/student-en`` -> ``student-en``; lower case."""
    bare = model.split(":", 1)[1] if model.split(":", 1)[0] in ("openai", "local", "openai-batch") else model
    return PurePosixPath(bare.rstrip("/")).name.lower() or bare.lower()


def parse_overrides(items: list[str] | None, flag: str = "--family") -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        pattern, sep, fam = item.partition("=")
        if not sep or not pattern.strip() or not fam.strip():
            raise UserError(f"{flag} {item!r}: give PATTERN=FAMILY, e.g. 'student-*=smollm'")
        out.append((pattern.strip().lower(), fam.strip()))
    return out


def family(model: str, overrides: list[tuple[str, str]] = ()) -> str | None:
    """The model's family: the first override or table pattern its name (or bare name) matches."""
    names = {model.lower(), name_of(model)}
    for pattern, fam in [*overrides, *TABLE]:
        if any(fnmatchcase(n, pattern) for n in names):
            return fam
    return None


def related(judge: str, model: str, overrides: list[tuple[str, str]] = ()) -> str | None:
    """Why ``judge`` may favour ``model`` ("same model gpt-4", "same family openai-gpt"), or None."""
    if name_of(judge) == name_of(model):
        return f"same model {name_of(model)}"
    fj, fm = family(judge, overrides), family(model, overrides)
    if fj is not None and fj == fm:
        return f"same family {fj}"
    return None


def flags(judges: list[str], models: list[str], reference: str | None,
          overrides: list[tuple[str, str]] = ()) -> list[dict]:
    """Every (judge, model) pair that may be self-preference, the reference included."""
    out = []
    for j in judges:
        for m, role in [(m, "model") for m in models] + ([(reference, "reference")] if reference else []):
            why = related(j, m, overrides)
            if why:
                out.append({"judge": j, "model": m, "role": role, "reason": why})
    return out
