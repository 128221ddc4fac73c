"""Reading a judge's 1-10 rating of one response (``compare``; PAPER.md section 2 asks for "a
single line containing value indicating the scores", then the explanation).

Rules, in order (``parse_rule`` in the comparison's meta records which one read a rating):

1. ``first_line``: the first non-empty line holds one number: ``8``, ``8.5``, ``8/10``,
   ``8 out of 10``, ``Score: 8``, ``**8**``, ``Rating: 8/10.``, ``8 - good answer``. A long
   sentence whose only number is not marked as a score ("Here are the 3 points I checked") gives
   way to an explicit score written later, if there is one.
2. ``explicit``: the LAST explicit score in the reply, for judges that explain first
   (``...\\n\\nScore: 8/10``, ``Overall, I would rate this response a 7 out of 10.``).

Refused (None, with the reason), so that the caller re-asks: no score, an ambiguous one
(``7-8``, ``3 or 4``, ``9/10 vs 8/10``), a score on another scale (``6/8``), or a value outside
1-10 (``0``, ``11``). Comparison data is training data on the prompt's own scale, so nothing
outside it is kept; a refused score is never replaced by a default.
"""

from __future__ import annotations

import re

NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w]|\.\d)")
_NUM = r"(-?\d+(?:\.\d+)?)(?![\w]|\.\d)"
_SCALE = r"(?:\s*/\s*(\d+(?:\.\d+)?)|\s+out\s+of\s+(\d+(?:\.\d+)?))?"
# Explicit scores: "Score: 8", "score of 8", "rating is 7/10", "rate this response a 7 out of 10",
# "give it an 8", "8/10", "8 out of 10".
EXPLICIT = [
    re.compile(rf"\b(?:overall\s+|final\s+)?(?:score|rating|grade)\s*(?::|=|\bof\b|\bis\b)\s*(?:(?:a|an)\s+)?{_NUM}{_SCALE}", re.I),
    re.compile(rf"\b(?:rate|rated|rating|give|giving|gives|gave|scored|award|awarding|assign)\s+"
               rf"(?:(?:this|the|it|its|my|an?)\s+)?(?:(?:response|answer|reply|assistant(?:'s\s+\w+)?|overall)\s+)?"
               rf"(?:(?:as|at|with|a|an)\s+)?(?:(?:score|rating)\s+of\s+)?(?:(?:a|an)\s+)?{_NUM}{_SCALE}", re.I),
    re.compile(rf"(?<![\w.]){_NUM}(?:\s*/\s*(10)(?![\d.])|\s+out\s+of\s+(10)(?![\d.]))", re.I),
]
_RANGE_BEFORE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:or|-|\u2013|to)\s*$", re.I)
_RANGE_AFTER = re.compile(r"^\s*(?:or|-|\u2013|to)\s*\d", re.I)


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _in_scale(value: float, scale: str | None, shown: str, low: float, high: float) -> tuple[float | None, str]:
    if scale is not None and float(scale) != 10:
        return None, f"a score out of {scale}, not out of 10: {shown[:80]!r}"
    if not low <= value <= high:
        return None, f"score {value:g} outside {low:g}-{high:g}"
    return value, "ok"


def _explicit(text: str) -> list[tuple[int, int, float, str | None]]:
    """(start, end, value, scale) of every explicit score, in text order, overlapping ones merged."""
    hits = []
    for rx in EXPLICIT:
        for m in rx.finditer(text):
            scale = next((g for g in m.groups()[1:] if g is not None), None)
            hits.append((m.start(1), m.end(), float(m.group(1)), scale))
    hits.sort()
    merged: list[tuple[int, int, float, str | None]] = []
    for h in hits:
        if merged and h[0] == merged[-1][0]:  # the same number read by two patterns
            if h[3] is not None and merged[-1][3] is None:
                merged[-1] = h
            continue
        merged.append(h)
    return merged


def _ambiguous(text: str, start: int, end: int) -> bool:
    return bool(_RANGE_BEFORE.search(text[:start]) or _RANGE_AFTER.match(text[end:]))


def parse_score(text: str, low: float = 1.0, high: float = 10.0) -> tuple[float | None, str]:
    """(score, rule) with rule ``first_line`` or ``explicit``; or (None, reason)."""
    line = first_line(text)
    if not line:
        return None, "empty output"
    clean_line = re.sub(r"[*_`#>]", " ", line)
    clean_text = re.sub(r"[*_`#>]", " ", text)
    values = []
    for m in NUMBER.finditer(clean_line):
        before = clean_line[: m.start()].rstrip()
        if before.endswith("/") or re.search(r"out of\s*$", before, re.I):
            if float(m.group(1)) != 10:  # "6/8" is a score on another scale
                return None, f"a score out of {m.group(1)}, not out of 10: {line[:80]!r}"
            continue  # the "10" of "8/10" or "8 out of 10"
        values.append(float(m.group(1)))
    explicit_line = _explicit(clean_line)
    distinct = sorted(set(values))
    if len(distinct) > 1:
        if len({h[2] for h in explicit_line}) == 1 and not any(_ambiguous(clean_line, h[0], h[1]) for h in explicit_line):
            h = explicit_line[-1]
            value, why = _in_scale(h[2], h[3], line, low, high)
            return (value, "first_line") if value is not None else (None, why)
        return None, f"several different numbers in the first line: {line[:80]!r}"
    first_end = clean_text.find(clean_line.strip()) + len(clean_line.strip())
    hits = _explicit(clean_text)
    if len(distinct) == 1:
        prose = len(re.findall(r"[A-Za-z]+", clean_line)) > 6 and not explicit_line
        if not (prose and any(h[0] >= first_end for h in hits)):
            value, why = _in_scale(distinct[0], None, line, low, high)
            return (value, "first_line") if value is not None else (None, why)
    if not hits:
        return None, f"no score in the first line or written as a score later: {line[:80]!r}"
    start, end, value, scale = hits[-1]
    if _ambiguous(clean_text, start, end):
        return None, f"an ambiguous score: {clean_text[max(0, start - 20):end + 10].strip()[:80]!r}"
    value, why = _in_scale(value, scale, clean_text[start:end], low, high)
    return (value, "explicit") if value is not None else (None, why)


def rationale(text: str) -> str:
    """Everything after the first non-empty line: the judge's explanation."""
    lines = (text or "").splitlines()
    for i, line in enumerate(lines):
        if line.strip():
            return "\n".join(lines[i + 1:]).strip()
    return ""
