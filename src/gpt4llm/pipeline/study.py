"""The study as plain data: what the pipeline file says, where its files go, its stages, and what
each stage gave. ``run`` fills it in; ``plan`` (the dry run) and ``report`` only read it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gpt4llm.pipeline.config import Bench, Pipeline, resolve_path


@dataclass
class Stage:
    """One step of the study. ``inputs`` is everything its output depends on besides its upstream
    stages (settings, models, data), fingerprinted to decide whether a finished stage is still valid."""

    name: str
    what: str
    inputs: dict
    outputs: list[Path]
    deps: list[str] = field(default_factory=list)


@dataclass
class Study:
    pipe: Pipeline
    file: Path
    out: Path
    stages: list[Stage] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)
    """Per stage kind (per-language stages keyed by language inside): what the stage returned."""
    timings: dict[str, dict] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, pipe: Pipeline, file: Path, output_dir: Path | None = None) -> "Study":
        base = output_dir or (resolve_path(pipe.output_dir, Path(file)) if pipe.output_dir else Path("runs") / pipe.name)
        return cls(pipe, Path(file), Path(os.path.normpath(base)))

    @property
    def journal(self) -> Path:
        """One journal for every model call of the study."""
        return self.out / "journal.sqlite"

    def p(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def path(self, value: str) -> str:
        """A data value of the pipeline file: a named set stays as it is, a path becomes absolute."""
        from gpt4llm.eval.benchmarks import BENCHMARKS

        if value in ("seeds", *BENCHMARKS) or value.startswith("hf:"):
            return value
        return str(resolve_path(value, self.file).resolve())

    def questions(self, bench: Bench) -> str:
        from gpt4llm.stage import seeds_path

        return str(seeds_path()) if bench.questions == "seeds" else self.path(bench.questions)

    def answerers(self) -> list[tuple[str, str, int]]:
        """(model_id, model, samples) of every model that answers the benchmarks."""
        a, langs = self.pipe.stages.answer, self.pipe.languages
        out = [(f"student-{lang}", f"local:{self.p('models', f'student-{lang}').resolve()}", a.samples) for lang in langs]
        if self.pipe.stages.dpo:  # SFT + DPO, one answer per question: compared with the SFT student
            out.append(("student-en-dpo", f"local:{self.p('models', 'student-en-dpo').resolve()}", 1))
        if a.base_model:
            out.append(("base", self.pipe.models.student_base, 1))
        return out
