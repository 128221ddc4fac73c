"""Vicuna's reviewer protocol (PAPER.md section 5): prompts, verdict parsing, and the summary.

FastChat read the two scores from the review's first line (commas to spaces, split, exactly two
floats, else [-1, -1], silently), which misses every review written under the math prompt: that
prompt asks GPT-4 to solve the problem first and to give the scores at the end ("Output: (1, 7)",
"Scores:\nAssistant 1: 1/10\nAssistant 2: 2/10"). ``parse_verdict`` reads the first line first,
then the last per-assistant scores, then a closing tuple (the rules are listed above it); a review
no rule reads is followed up by the judge stage and then reported, never dropped.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
PROMPT_OF_CATEGORY = {"coding": 2, "math": 3}  # else 1 (FastChat's reviewer.jsonl)
MAX_PARSE_FAILURE_SHARE = 0.05  # a judge is unreliable when more of its verdicts cannot be read


@lru_cache(maxsize=1)
def prompts() -> dict[int, dict]:
    text = resources.files("gpt4llm.prompts").joinpath("vicuna_reviewer_prompt.jsonl").read_text(encoding="utf-8")
    return {d["prompt_id"]: d for d in map(json.loads, text.splitlines()) if d}


@lru_cache(maxsize=1)
def reviewers() -> dict[int, dict]:
    text = resources.files("gpt4llm.prompts").joinpath("vicuna_reviewer.jsonl").read_text(encoding="utf-8")
    return {d["prompt_id"]: d for d in map(json.loads, text.splitlines()) if d}


def review_messages(category: str | None, question: str, answer_1: str, answer_2: str) -> tuple[list[dict], int]:
    """(messages, prompt_id): the system prompt, then the category's template filled in."""
    pid = PROMPT_OF_CATEGORY.get(category or "", 1)
    p = prompts()[pid]
    user = p["prompt_template"].format(question=question, answer_1=answer_1, answer_2=answer_2, **p["defaults"])
    return [{"role": "system", "content": p["system_prompt"]}, {"role": "user", "content": user}], pid


# ---------------------------------------------------------------- reading a verdict
#
# Rules, in order (``meta.parse_rule`` records which one read a review):
# 1. ``first_line``: the first non-empty line is a verdict line: two scores and nothing else that
#    is a number ("8 9", "8, 9", "(8, 9)", "8/10 9/10", "**8** **9**", "Scores: 8 9",
#    "Assistant 1: 8 Assistant 2: 9", "9 8 (Assistant 1 is better)"). What the general and coding
#    prompts ask for.
# 2. ``per_assistant``: the last explicit score of each assistant anywhere in the review
#    ("Assistant 1: 8", "Assistant 1: 8/10.", "Assistant 1 receives a score of 8", "I would give
#    Assistant 1 a score of 1 and Assistant 2 a score of 10 out of 10.", "8 and 9 respectively",
#    a heading "Assistant 1:" with a "Score: 6/10" line under it, "I would give both Assistant 1
#    and Assistant 2 a score of 8"). GPT-3.5-turbo wrote every one of these in FastChat's 2023
#    reviews (tests/support/fastchat_reviews.py: 38 real reviews, all read as FastChat stored them).
# 3. ``closing_tuple``: the last pair "(a, b)" in the review's closing lines (the last three, or
#    from a line that says "Output"/"Scores" on): where the math prompt asks for "a Python tuple".
#    A pair quoted in the reasoning, such as a point (2, -2) or (10, 4) mid-review, is not read.
# When both 2 and 3 read a pair, the one written later wins: the math prompt asks for the scores
# at the end. Scores are taken as written, 0 and values above 10 included (FastChat kept "0 9"
# for an empty answer); the summary counts those outside 1-10. Fallback rules only take scores in
# 0-10, since a number there may be an answer of the math problem instead.

_MARKUP = re.compile(r"[*_`#>]|\\\(|\\\)")
_NUM = r"(\d+(?:\.\d+)?)"
# "/10" or "out of 10" after a score (optionally "10.0"). It may end a sentence ("8/10.", "3 out of 10,"):
# only a digit after it, or a decimal point and a digit ("3/10.5", "85/100"), makes it something else.
_OF10 = r"(?:(?:\s*/\s*|\s+out\s+of\s+)10(?:\.0+)?(?!\.?\d))?"
_LABEL = r"assistant\s*(?:#\s*)?([12])(?![\d])"
# "Assistant 2's code submission": what of an assistant is scored; a closed list of nouns, so that
# "... and Assistant 2's answer is 3" (the math problem's answer) is not read as a score
_WORK = r"(?:'s\s+(?:\w+\s+)?(?:answers?|solutions?|responses?|submissions?|code|implementations?|work))?"
_VERDICT_WORD = r"(?:final\s+)?(?:scores?|ratings?|output|verdict|result|evaluation)"
# A score ends a clause: end of line, punctuation, a parenthesis, a dash, or a joining word.
_END = (r"(?=\s*(?:$|[.,;:!)\]]|\(|[-\u2013\u2014]\s|\b(?:and|for|while|because|as|since|but|whereas|"
        r"due|which|respectively|points?|overall|each|assistant)\b))")
_PAIR_SEP = r"\s*(?:,|;|&|\band\b|\bvs\.?|\s)\s*"
_BARE_PAIR = re.compile(rf"^[\s(\[]*{_NUM}{_OF10}{_PAIR_SEP}{_NUM}{_OF10}[\s)\]]*(?:\s+out\s+of\s+10)?")
_LABELED = re.compile(rf"{_LABEL}(?:'s)?(?:\s+(?:score|rating))?\s*(?:[:=\-\u2013\u2014]|\(\s*(?:score|rating)\s*:?)?\s*{_NUM}{_OF10}{_END}", re.I)
_TUPLE = re.compile(rf"[(\[]\s*{_NUM}{_OF10}\s*,\s*{_NUM}{_OF10}\s*[)\]]")
_SCORE_WORDS = re.compile(r"\b(?:scor\w*|rat(?:e|es|ed|ing|ings)|grade\w*|give[sn]?|giving|award\w*|receive[sd]?|"
                          r"gets?|earns?|deserves?|points?)\b", re.I)
_PER_ASSISTANT = [
    # "Assistant 1: 8", "Assistant 1's score: 8/10", "Assistant 1 (score: 8)", "Assistant 1 - 7"
    _LABELED,
    # "Assistant 1 receives a score of 8", "Assistant 1's answer gets a 7", "Assistant 1 is rated 8/10"
    re.compile(rf"{_LABEL}(?:'s)?[^.\n\d]{{0,40}}?\b(?:scores?|scored|rating|rated|receives?|received|gets?|got|"
               rf"earns?|earned|deserves?|awarded|given)\b[^.\n\d]{{0,24}}?{_NUM}{_OF10}{_END}", re.I),
    # "I would give Assistant 1 a score of 1", "rate Assistant 2 an 8", "rate Assistant 1's code
    # submission a 7 out of 10", "rate Assistant 2's solution as 8 out of 10"
    re.compile(rf"\b(?:give|gives|giving|gave|rate|rating|score|scoring|award|awarding|assign|assigning)\s+{_LABEL}"
               rf"(?:'s(?:\s+[\w-]+){{1,2}})?\s+(?:as\s+)?(?:(?:a|an|the)\s+)?(?:(?:overall\s+)?(?:score|rating|grade)\s+(?:of\s+)?)?"
               rf"{_NUM}{_OF10}{_END}", re.I),
    # "Score for Assistant 1: 8", "the rating of Assistant 2 is 9"
    re.compile(rf"\b(?:score|rating|grade)\s+(?:for|of)\s+{_LABEL}\s*(?:[:=\-]|\bis\b)\s*{_NUM}{_OF10}{_END}", re.I),
]
# "8 for Assistant 1" (only in a sentence about scores)
_NUM_FOR = re.compile(rf"(?<![\d.]){_NUM}{_OF10}\s+(?:points?\s+)?(?:for|to)\s+{_LABEL}", re.I)
# "... give Assistant 1 a 6 and Assistant 2 an 8" (only in a sentence about scores)
_AND_LABEL = re.compile(rf"\b(?:and|while|whereas|but)\s+{_LABEL}{_WORK}\s+(?:as\s+)?(?:(?:a|an)\s+)?(?:(?:score|rating)\s+of\s+)?{_NUM}{_OF10}{_END}", re.I)
_RESPECTIVELY = re.compile(rf"(?<![\d.]){_NUM}{_OF10}\s*(?:,|and|&)\s*{_NUM}{_OF10},?\s+(?:points?\s+)?respectively", re.I)
# One score for both: "I would give both Assistant 1 and Assistant 2 a score of 8 out of 10", "they both
# receive a score of 10", "I would rate both Assistant 1 and Assistant 2's submissions a 9 out of 10"
_BOTH_WHO = r"(?:both\s+(?:assistants|of\s+them|assistant\s*1\s+and\s+assistant\s*2)|they\s+both|both)(?:'s\s+\w+)?"
_BOTH_SCORE = (rf"\s+(?:as\s+)?(?:(?:a|an|the)\s+)?(?:(?:high|perfect|same|equal)\s+)?"
               rf"(?:(?:score|rating|grade)\s+(?:of\s+)?)?{_NUM}{_OF10}{_END}")
_BOTH = [re.compile(rf"\b(?:give|gives|giving|gave|rate|rating|award|awarding|assign|assigning)\s+{_BOTH_WHO}{_BOTH_SCORE}", re.I),
         re.compile(rf"\b{_BOTH_WHO}\s+(?:receive|receives|received|get|gets|got|deserve|deserves|earn|earns|earned|scored|"
                    rf"are\s+(?:given|awarded|rated)|(?:have|has)\s+(?:received|earned)){_BOTH_SCORE}", re.I)]
# A heading "Assistant 1:" (or "[Assistant 1's Solution]") then, in its section, a line "Score: 6/10"
_HEADING = re.compile(rf"^\s*\[?\s*{_LABEL}(?:'s\s+(?:answer|solution|response|submission|code)s?)?\s*\]?\s*:?\s*$", re.I)
_SCORE_LINE = re.compile(rf"^\s*(?:final\s+|overall\s+)?(?:score|rating|grade)\s*(?:[:=\-]|\bis\b)\s*{_NUM}{_OF10}{_END}", re.I)


def _clean(text: str) -> str:
    return _MARKUP.sub(" ", text or "")


def _line_verdict(line: str) -> list[float] | None:
    """Two scores from a line that is a verdict and nothing else that is a number."""
    s = re.sub(rf"^\s*{_VERDICT_WORD}\s*(?:[:=\-]|\bis\b|\bare\b)?\s*", "", line, flags=re.I)
    labeled = {}
    for m in _LABELED.finditer(s):
        labeled.setdefault(m.group(1), float(m.group(2)))
    if len(labeled) == 2:
        rest = _LABELED.sub(" ", s)
        if not re.search(r"\d", re.sub(r"out\s+of\s+10|/\s*10", " ", rest)):
            return [labeled["1"], labeled["2"]]
        return None
    m = _BARE_PAIR.match(s)
    if not m:
        return None
    rest = re.sub(r"out\s+of\s+10|/\s*10|assistant\s*[12]", " ", s[m.end():], flags=re.I)
    if re.search(r"\d", rest):  # "8 9." is a verdict; "8 9 10" and "8/10 9/10 (3 of 4 tips)" are not
        return None
    return [float(m.group(1)), float(m.group(2))]


def _lines(text: str) -> list[str]:
    return [x.strip() for x in _clean(text).splitlines() if x.strip() and x.strip() not in ("python", "Python")]


def _per_assistant(text: str) -> tuple[list[float], int] | None:
    """The last explicit score of each assistant, and where the later of the two ends."""
    found: dict[str, tuple[float, int]] = {}
    clean = _clean(text)
    hits = []
    for rx in _PER_ASSISTANT:
        for line_start, line in _line_spans(clean):
            for m in rx.finditer(line):
                hits.append((line_start + m.end(), m.group(1), float(m.group(2))))
    heading = None  # the assistant whose section this line is in ("Assistant 1:" on a line of its own)
    for line_start, line in _line_spans(clean):
        if h := _HEADING.match(line):
            heading = h.group(1)
            continue
        if heading and (m := _SCORE_LINE.match(line)):
            hits.append((line_start + m.end(), heading, float(m.group(1))))
        for rx in _BOTH:
            for m in rx.finditer(line):
                hits += [(line_start + m.end(), who, float(m.group(1))) for who in "12"]
        sentences = re.split(r"(?<=[.!?])\s+", line)
        at = line_start
        for sent in sentences:
            if _SCORE_WORDS.search(sent):
                for m in _NUM_FOR.finditer(sent):
                    hits.append((at + m.end(), m.group(2), float(m.group(1))))
                for m in _AND_LABEL.finditer(sent):
                    hits.append((at + m.end(), m.group(1), float(m.group(2))))
                for m in _RESPECTIVELY.finditer(sent):
                    hits.append((at + m.end(), "1", float(m.group(1))))
                    hits.append((at + m.end(), "2", float(m.group(2))))
            at += len(sent) + 1
    for end, who, value in sorted(hits):
        if 0 <= value <= 10:
            found[who] = (value, end)
    if len(found) < 2:
        return None
    return [found["1"][0], found["2"][0]], max(found["1"][1], found["2"][1])


def _line_spans(text: str):
    at = 0
    for line in text.split("\n"):
        yield at, line
        at += len(line) + 1


def _closing_tuple(text: str) -> tuple[list[float], int] | None:
    """The last "(a, b)" pair in the closing lines, and where it ends."""
    clean = _clean(text)
    spans = [(s, x) for s, x in _line_spans(clean) if x.strip() and x.strip().lower() != "python"]
    if not spans:
        return None
    marker = max((i for i, (_, x) in enumerate(spans) if re.search(rf"\b{_VERDICT_WORD}\b", x, re.I)), default=None)
    first = len(spans) - 3
    if marker is not None:
        first = min(first, marker)
    for start, line in reversed(spans[max(first, 0):]):
        pairs = list(_TUPLE.finditer(line))
        if not pairs:
            verdict = _line_verdict(line) if re.fullmatch(rf"\s*(?:{_VERDICT_WORD}\s*[:=]?\s*)?[\d\s.,/()\[\]]+[.!]?\s*", line, re.I) else None
            if verdict and all(0 <= v <= 10 for v in verdict):
                return verdict, start + len(line)
            continue
        m = pairs[-1]
        a, b = float(m.group(1)), float(m.group(2))
        if 0 <= a <= 10 and 0 <= b <= 10:
            return [a, b], start + m.end()
    return None


def parse_verdict(text: str) -> tuple[list[float] | None, str]:
    """([s1, s2], rule) with rule first_line, per_assistant or closing_tuple; or (None, reason)."""
    lines = _lines(text)
    if not lines:
        return None, "empty output"
    first = _line_verdict(lines[0])
    if first is not None:
        return first, "first_line"
    per, tup = _per_assistant(text), _closing_tuple(text)
    if per and tup:
        return (tup[0], "closing_tuple") if tup[1] > per[1] else (per[0], "per_assistant")
    if per:
        return per[0], "per_assistant"
    if tup:
        return tup[0], "closing_tuple"
    return None, f"no two scores on the first line, per assistant, or in a closing tuple: {lines[0][:80]!r}"


def out_of_range(scores: list[float] | None) -> bool:
    """A verdict kept as written but outside the prompt's 1-10 scale (0 for an empty answer)."""
    return scores is not None and any(not 1 <= x <= 10 for x in scores)


def outcome(model: float, ref: float) -> str:
    return "win" if model > ref else "loss" if model < ref else "tie"


def summarize(per_question: list[dict], n_boot: int = 10_000, seed: int = 0) -> dict:
    """The paper's metric and more, from per-question rows ``{question_id, category, model, reference,
    orders: [(model, ref) per order], call_failed}``; rows with ``model`` None are call failures
    when ``call_failed`` is set (the judge was never heard), else parse failures."""
    import numpy as np

    ok = [r for r in per_question if r["model"] is not None]
    calls = sum(1 for r in per_question if r["model"] is None and r.get("call_failed"))
    m = np.array([r["model"] for r in ok], dtype=float)
    ref = np.array([r["reference"] for r in ok], dtype=float)
    out = {"questions": len(per_question), "scored": len(ok), "parse_failures": len(per_question) - len(ok) - calls,
           "call_failures": calls,
           "model_score_sum": float(m.sum()), "reference_score_sum": float(ref.sum()),
           "ratio_percent": float(100 * m.sum() / ref.sum()) if ref.sum() else None}
    counts = {"win": 0, "tie": 0, "loss": 0}
    for a, b in zip(m, ref):
        counts[outcome(a, b)] += 1
    out.update({"wins": counts["win"], "ties": counts["tie"], "losses": counts["loss"]})
    both = [r for r in ok if len(r.get("orders", [])) == 2]
    flips = sum(1 for r in both if outcome(*r["orders"][0]) != outcome(*r["orders"][1]))
    out["flip_rate"] = flips / len(both) if both else None
    out["flips"] = flips
    if len(ok) > 1 and ref.sum():
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(ok), size=(n_boot, len(ok)))
        ratios = 100 * m[idx].sum(1) / ref[idx].sum(1)
        out["ratio_ci95"] = [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
    else:
        out["ratio_ci95"] = None
    cats: dict[str, list] = {}
    for r in ok:
        cats.setdefault(r.get("category") or "unknown", []).append(r)
    out["per_category"] = {c: {"n": len(rs), "model_score_sum": sum(x["model"] for x in rs),
                               "reference_score_sum": sum(x["reference"] for x in rs),
                               "ratio_percent": 100 * sum(x["model"] for x in rs) / sum(x["reference"] for x in rs)
                               if sum(x["reference"] for x in rs) else None}
                           for c, rs in sorted(cats.items())}
    return out
