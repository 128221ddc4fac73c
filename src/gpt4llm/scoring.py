"""Reading a judge's score from its first line (PAPER.md section 2 asks for "a single line
containing value indicating the scores").

Accepted: ``8``, ``8.5``, ``8/10``, ``8 out of 10``, ``Score: 8``, ``**8**``, ``Rating: 8/10.``,
``8 - good answer``. Refused (None, with the reason): no number, several different numbers
(``7-8``, ``7 or 8``), a value outside 1-10. A refused score is never replaced by a default:
the caller re-asks, then marks the response failed with the judge's raw text kept.
"""

from __future__ import annotations

import re

NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w]|\.\d)")


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def parse_score(text: str, low: float = 1.0, high: float = 10.0) -> tuple[float | None, str]:
    """(score, "ok") or (None, reason)."""
    line = first_line(text)
    if not line:
        return None, "empty output"
    clean = re.sub(r"[*_`#>]", " ", line)
    values = []
    for m in NUMBER.finditer(clean):
        before = clean[: m.start()].rstrip()
        if before.endswith("/") or re.search(r"out of\s*$", before, re.I):
            if float(m.group(1)) != 10:  # "6/8" is a score on another scale
                return None, f"a score out of {m.group(1)}, not out of 10: {line[:80]!r}"
            continue  # the "10" of "8/10" or "8 out of 10"
        values.append(float(m.group(1)))
    if not values:
        return None, f"no score in the first line: {line[:80]!r}"
    distinct = sorted(set(values))
    if len(distinct) > 1:
        return None, f"several different numbers in the first line: {line[:80]!r}"
    value = distinct[0]
    if not low <= value <= high:
        return None, f"score {value:g} outside {low:g}-{high:g}"
    return value, "ok"


def rationale(text: str) -> str:
    """Everything after the first non-empty line: the judge's explanation."""
    lines = (text or "").splitlines()
    for i, line in enumerate(lines):
        if line.strip():
            return "\n".join(lines[i + 1:]).strip()
    return ""
