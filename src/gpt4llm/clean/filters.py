"""Quality filters of ``gpt4llm clean``: each one switchable, each with its reason code.

- ``empty``: no output, or only whitespace.
- ``truncated``: the teacher hit its token limit (``meta.finish_reason`` "length", or "max_tokens" as
  some servers write it); records without the field are not judged.
- ``refusal``: the output contains a phrase of ``gpt4llm/data/refusals.txt`` (documented there).
- ``wrong_language``: the output is not in the expected language (``--language``, else the record's
  ``meta.language`` as ``generate --language`` writes it; records with neither are not judged). Read
  by py3langid (its model ships inside the 4.5 MB wheel; see the README for why not lingua or
  fastText), on the text without code, URLs and numbers, when 20 or more letters remain, and only
  when it is confident (``wrong_language``). Measured: none of 160 real English answers (FastChat's
  Vicuna-80 answers by GPT-3.5 and Bard, cut to 3 words or whole) is flagged when English is
  expected; all of them are when Chinese, Japanese, Korean, German, French, Spanish or Russian is;
  none of spaCy's example sentences in those 7 languages is flagged in its own language; 74% of
  spaCy's example sentences in 40 other languages are flagged when English is expected (the rest:
  short, or close to English, read with low confidence).
- ``copies_instruction``: 80% or more of the output's words lie in word 3-grams of the instruction
  (an output shorter than 3 words: the same words as the instruction). Only the instruction, not the
  input: "extract the first sentence of the passage" rightly copies its input. Only outputs at most
  twice the instruction's length (+40 characters) are read: a longer one is either an answer or the
  instruction repeated over and over, which ``truncated`` finds (and reading every output's words
  took a quarter of the time on 1M records).
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources

from gpt4llm.clean.text import words
from gpt4llm.errors import UserError

FILTERS = ("empty", "truncated", "refusal", "wrong_language", "copies_instruction")
TRUNCATED = ("length", "max_tokens")
COPY_NGRAM, COPY_SHARE = 3, 0.8
MIN_LETTERS = 20
# py3langid's labels that are one language for this check (its model tells Wu and Cantonese from
# Mandarin, and Nigerian Pidgin from English, on short texts: a Chinese answer is not in the wrong language)
VARIETIES = {"zh": {"zh", "wuu", "yue"}, "en": {"en", "pcm"}, "no": {"no", "nn"}, "ar": {"ar", "ary", "arz"},
             "sr": {"sr", "hr", "bs"}, "hr": {"sr", "hr", "bs"}, "bs": {"sr", "hr", "bs"}}
_STRIP = re.compile(r"```.*?```|`[^`\n]*`|https?://\S+|\d+", re.S)


def refusal_phrases() -> tuple[list[str], list[str]]:
    """(anywhere, start) phrases of the packaged list."""
    text = resources.files("gpt4llm.data").joinpath("refusals.txt").read_text(encoding="utf-8")
    anywhere, start = [], []
    for line in text.splitlines():
        kind, _, phrase = line.partition(":")
        if line.startswith("#") or not phrase.strip():
            continue
        (anywhere if kind.strip() == "anywhere" else start).append(phrase.strip().casefold())
    return anywhere, start


def _code(language: str) -> str:
    """A language code from a code or a name (zh, Chinese)."""
    from gpt4llm.generate import LANGUAGES

    lang = language.strip().lower()
    names = {v.lower(): k for k, v in LANGUAGES.items()}
    return names.get(lang, lang)


class Filters:
    """The switched-on filters; ``check`` gives (reason, detail) for a record that fails one."""

    def __init__(self, on: dict[str, bool], language: str | None = None):
        self.on = on
        anywhere, start = refusal_phrases()
        self._anywhere = re.compile("|".join(re.escape(p) for p in anywhere))
        # each phrase's longest word: an output holding none of them holds no phrase (str.find over the
        # text is ~10x cheaper than the alternation tried at every position)
        self._anchors = sorted({max(p.split(), key=len) for p in anywhere})
        self._start = re.compile("|".join(re.escape(p) for p in start))
        self.language = _code(language) if language else None
        if self.language and on.get("wrong_language"):
            self.check_language_code(self.language, "--language")

    @cached_property
    def _langid(self):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def check_language_code(self, code: str, where: str) -> None:
        if code not in self._langid.nb_classes:
            raise UserError(f"{where}: language {code!r} is not one py3langid knows; use an ISO 639-1 code such as "
                            "zh, en, es, or turn the check off with --no-wrong-language")

    def wrong_language(self, text: str, expected: str) -> str | None:
        """The language ``text`` is written in when that is confidently not ``expected``, else None.
        Confidently: the top language has probability >= 0.5 and ``expected`` (with its varieties:
        Wu and Cantonese for Chinese) less than 0.1. Too few letters (< 20): None."""
        t = _STRIP.sub(" ", text)
        if sum(ch.isalpha() for ch in t) < MIN_LETTERS:
            return None
        ranked = self._langid.rank(t)
        top, p = ranked[0]
        same = VARIETIES.get(expected, {expected})
        if top in same or p < 0.5 or sum(q for lang, q in ranked if lang in same) >= 0.1:
            return None
        return top

    def check(self, instruction: str, output: str | None, meta: dict | None, where: str) -> tuple[str, str] | None:
        on = self.on
        if output is None or not output.strip():
            return ("empty", "no output" if output is None else "blank output") if on["empty"] else None
        meta = meta if isinstance(meta, dict) else {}
        if on["truncated"] and meta.get("finish_reason") in TRUNCATED:
            return "truncated", f"finish_reason {meta['finish_reason']}"
        if on["refusal"]:
            low = output.casefold().replace("\u2019", "'")
            m = self._start.search(low, 0, 200) or (
                self._anywhere.search(low) if any(a in low for a in self._anchors) else None)
            if m:
                return "refusal", m.group(0)
        if on["wrong_language"]:
            expected = self.language
            if expected is None and isinstance(meta.get("language"), str) and meta["language"].strip():
                expected = _code(meta["language"])
                self.check_language_code(expected, f"{where}: meta.language")
            if expected and (got := self.wrong_language(output, expected)):
                return "wrong_language", f"expected {expected}, detected {got}"
        if on["copies_instruction"] and len(output) <= 2 * len(instruction) + 40 and \
                (share := copied_share(instruction, output)) >= COPY_SHARE:
            return "copies_instruction", f"{share:.0%} of the output is the instruction's words"
        return None


def copied_share(instruction: str, output: str) -> float:
    """The share of the output's words that lie in word 3-grams of the instruction."""
    ow, iw = words(output), words(instruction)
    n = COPY_NGRAM
    if len(ow) < n:
        return 1.0 if ow and ow == iw else 0.0
    grams = {tuple(iw[i:i + n]) for i in range(len(iw) - n + 1)}
    covered = bytearray(len(ow))
    for i in range(len(ow) - n + 1):
        if tuple(ow[i:i + n]) in grams:
            covered[i:i + n] = b"\x01" * n
    return sum(covered) / len(ow)
