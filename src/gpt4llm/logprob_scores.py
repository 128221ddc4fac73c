"""Scores read from a local judge's token probabilities (``--score-mode logprobs``).

A small judge (the embedded 135M model) rarely writes a score on the first line of its reply, so
text parsing gives nothing to train on. As G-Eval does (Liu et al., 2023, "G-Eval: NLG Evaluation
using GPT-4 with Better Human Alignment"), the score is then the expectation over the score tokens
the judge would write first: p(s) for s = 1..10 from the next-token distribution after the same
prompt (chat template and generation prompt applied as for generation), renormalised over the
scores. "10" is two tokens for most tokenizers: p(10) = p("1") p("0" | "1"), p(1) = p("1") (1 - p("0" | "1")).
The share of probability the judge put on score tokens at all (``mass``) is reported with every
score, so a user sees how much the judge "meant" it. Pairwise verdicts ("s1 s2") read s1, then s2
after the most likely s1 and a space. Local models only: remote APIs give at most top-20 logprobs.

Scores are computed, not sampled, and journaled like any model call (``journaled``: the reply text,
with the mass in it), so a re-run, or a pipeline that adds a stage after them, computes none again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gpt4llm.errors import UserError

SCORES = range(1, 11)


@dataclass
class Expected:
    score: float
    mass: float
    best: int


def _digit_ids(tok) -> list[int]:
    ids = []
    for d in range(10):
        enc = tok.encode(str(d), add_special_tokens=False)
        if len(enc) != 1:
            raise UserError(f"--score-mode logprobs: the judge's tokenizer splits the digit {d} into {len(enc)} "
                            "tokens; use --score-mode text")
        ids.append(enc[0])
    return ids


def _next_probs(tok, model, texts: list[str], batch_size: int):
    import torch

    out = []
    tok.padding_side = "left"
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            logits = model(**enc).logits[:, -1, :].float()
            out.append(torch.softmax(logits, dim=-1).cpu())
    return torch.cat(out) if out else None


def expected_scores(judge: str, chats: list[list[dict]], prefixes: list[str] | None = None,
                    batch_size: int = 8) -> list[Expected]:
    """The expected 1-10 score the local ``judge`` would write next after each chat (+ prefix)."""
    from gpt4llm.backends import parse_model
    from gpt4llm.backends.local import load_model

    spec = parse_model(judge, "--judge")
    if spec.backend != "local":
        raise UserError(f"--score-mode logprobs reads a local judge's probabilities; {judge} is not local: "
                        "use --score-mode text")
    if not chats:
        return []
    tok, model = load_model(spec.name)
    digits = _digit_ids(tok)
    base = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) if tok.chat_template
            else "\n\n".join(m["content"] for m in c) for c in chats]
    base = [b + (prefixes[i] if prefixes else "") for i, b in enumerate(base)]
    first = _next_probs(tok, model, base, batch_size)
    after_one = _next_probs(tok, model, [b + "1" for b in base], batch_size)
    out = []
    for p, q in zip(first, after_one):
        p_one, p_zero = float(p[digits[1]]), float(q[digits[0]])
        probs = {s: float(p[digits[s]]) for s in range(2, 10)}
        probs[1], probs[10] = p_one * (1 - p_zero), p_one * p_zero
        mass = sum(probs.values())
        if mass <= 0:
            out.append(Expected(float("nan"), 0.0, 0))
            continue
        out.append(Expected(sum(s * v for s, v in probs.items()) / mass, mass, max(probs, key=probs.get)))
    return out


def score_text(e: Expected) -> str:
    """A reply in the text protocol's shape, so the same parser reads it and the rationale says how."""
    return f"{e.score:.2f}\n(expected score over the judge's score-token probabilities; mass {e.mass:.6g})"


def masses(text: str) -> list[float]:
    """The mass(es) a ``score_text``/``verdict_texts`` reply reports."""
    m = re.search(r"mass ([0-9.eE+-]+)(?:, ([0-9.eE+-]+))?\)", text)
    return [float(x) for x in m.groups() if x is not None] if m else []


def journaled(journal, judge: str, chats: list[list[dict]], read: str,
              compute: Callable[[list[list[dict]]], list[str]]) -> list[str]:
    """The reply texts for ``chats``: those already in ``journal`` read back, the rest computed
    (``compute``, in one batch) and journaled under a key of the judge, the messages and ``read``."""
    from gpt4llm.backends.journal import call_key

    keys = [call_key("local-logprobs", judge, {"messages": c, "read": read}) for c in chats]
    have = {k: e.text for k, e in journal.lookup(keys).items()}
    todo: dict[str, int] = {}  # key -> the first chat with it
    for i, k in enumerate(keys):
        if k not in have:
            todo.setdefault(k, i)
    for (k, i), text in zip(todo.items(), compute([chats[i] for i in todo.values()]) if todo else []):
        journal.record(k, "local-logprobs", judge, {"messages": chats[i], "read": read}, text=text, finish_reason="stop")
        have[k] = text
    return [have[k] for k in keys]


def verdict_texts(judge: str, chats: list[list[dict]], batch_size: int = 8) -> tuple[list[str], list[float]]:
    """'s1 s2' verdicts: s1 as above, then s2 after the most likely s1 and a space; and the mean
    probability mass the judge put on score tokens for the two."""
    first = expected_scores(judge, chats, batch_size=batch_size)
    second = expected_scores(judge, chats, [f"{e.best} " for e in first], batch_size)
    texts = [f"{a.score:.2f} {b.score:.2f}\n(expected scores over the judge's score-token probabilities; "
             f"mass {a.mass:.6g}, {b.mass:.6g})" for a, b in zip(first, second)]
    return texts, [round((a.mass + b.mass) / 2, 6) for a, b in zip(first, second)]
