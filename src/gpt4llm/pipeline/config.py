"""The pipeline file (``gpt4llm run PIPELINE.yaml``): models, data, stages and their settings.

Checked before any work starts: an unknown key, a wrong type, a missing file or a bad model form
is one error line naming the file, the line and the YAML path (``quickstart.yaml:14: stages.sft.epocs:
unknown key``). Every model string goes through ``parse_model``, every path is checked to exist,
and every stage's section is its command's settings class (``gpt4llm.settings.section``): a YAML
key is the name of the command's flag, with the same type, range and default.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpt4llm.backends import DEFAULT_MODEL, BackendSettings, parse_model
from gpt4llm.clean import CleanSettings
from gpt4llm.compare import CompareSettings
from gpt4llm.errors import UserError
from gpt4llm.eval.answer import AnswerSettings
from gpt4llm.eval.judge import JudgeSettings
from gpt4llm.eval.rank import RankSettings
from gpt4llm.eval.rouge import RougeSettings
from gpt4llm.generate import GenerateSettings
from gpt4llm.publish.settings import PublishSettings
from gpt4llm.settings import section
from gpt4llm.stats import StatsSettings
from gpt4llm.train.dpo import DPOSettings
from gpt4llm.train.iterate import IterateSettings
from gpt4llm.train.reward import RMSettings
from gpt4llm.train.sft import SFTSettings
from gpt4llm.translate import TranslateSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _model(v: str | list[str] | None) -> str | list[str] | None:
    for x in ([v] if isinstance(v, str) else v or []):
        try:
            parse_model(x, "model")
        except UserError as e:
            raise ValueError(str(e).removeprefix("model ")) from None
    if isinstance(v, list) and (not v or len(set(v)) != len(v)):
        raise ValueError("a panel of judges names each judge once, at least one")
    return v


class Models(Strict):
    teacher: str = DEFAULT_MODEL
    """Answers the instructions (the paper: GPT-4)."""
    translator: str | None = None
    """Translates the instructions for other languages (default: the teacher)."""
    judge: str | list[str] = DEFAULT_MODEL
    """Scores responses (compare) and reviews answer pairs (eval judge); a list is a panel: each judge on the same pairs, per-judge results, their agreement and the panel's verdict."""
    student_base: str = DEFAULT_MODEL
    """The model fine-tuned on the teacher's answers (the paper: LLaMA-7B)."""
    reward_base: str = DEFAULT_MODEL
    """The reward model's backbone (the paper: OPT-1.3B)."""

    _check = field_validator("teacher", "translator", "judge", "student_base", "reward_base")(_model)


Backend = BackendSettings  # the backend: section is the settings every model command takes as flags


class Bench(Strict):
    questions: str
    """A benchmark name (vicuna80, user-oriented-252, unnatural-instructions), 'seeds', or a file."""
    limit: int | None = Field(None, ge=1)


class Benchmarks(Strict):
    judge: Bench | None = None
    """Questions the judge reviews (the paper: vicuna80)."""
    rouge: Bench | None = None
    """Questions with ground truth for ROUGE (the paper: unnatural-instructions); without ground truth,
    the reference answers are the truth."""


class Data(Strict):
    instructions: str = "seeds"
    """Alpaca records to answer: a file, hf:NAME[:split], or 'seeds' (the bundled 40)."""
    limit: int | None = Field(None, ge=1)
    benchmarks: Benchmarks = Benchmarks()


# Each stage's section is its command's settings class minus what the pipeline owns (paths, the
# models of models:, the backend, the journal): one declaration for a YAML key and its flag.
GenerateStage = section(GenerateSettings)
TranslateStage = section(TranslateSettings)
CleanStage = section(CleanSettings)
CompareStage = section(CompareSettings)
SFTStage = section(SFTSettings)
RMStage = section(RMSettings)
DPOStage = section(DPOSettings)
IterateStage = section(IterateSettings)
AnswerStage = section(AnswerSettings)
RankStage = section(RankSettings)
JudgeStage = section(JudgeSettings)
RougeStage = section(RougeSettings)
StatsStage = section(StatsSettings)
PublishStage = section(PublishSettings)


class ReportStage(Strict):
    paper_numbers: bool = True
    """Put the paper's published numbers beside this run's."""


class Stages(Strict):
    generate: GenerateStage = GenerateStage()
    translate: TranslateStage = TranslateStage()
    clean: CleanStage | None = None
    """Clean the teacher's answers before training (clean.<lang>.jsonl): duplicates, bad answers, and
    contamination with the sets this pipeline evaluates on (data.benchmarks) plus clean.against."""
    compare: CompareStage | None = None
    sft: SFTStage | None = SFTStage()
    rm: RMStage | None = None
    dpo: DPOStage | None = None
    """Train student-en-dpo from the English SFT student on the comparisons (the comparison data is English)."""
    iterate: IterateStage | None = None
    """Improve the English SFT student with its own samples, scored by the reward model (stages.rm) or iterate.judge (models/student-en-iterate)."""
    answer: AnswerStage | None = None
    rank: RankStage | None = None
    judge: JudgeStage | None = None
    rouge: RougeStage | None = None
    stats: StatsStage | None = None
    publish: PublishStage | None = None
    """The study's datasets (Parquet + dataset card) and models (with model cards) in <output_dir>/publish, last."""
    report: ReportStage = ReportStage()


class Pipeline(Strict):
    name: str = "study"
    seed: int = 42
    output_dir: str | None = None
    """Default output directory (relative to the pipeline file); --output-dir overrides it."""
    models: Models = Models()
    backend: Backend = Backend()
    data: Data = Data()
    stages: Stages = Stages()

    @model_validator(mode="after")
    def _dependencies(self) -> "Pipeline":
        s = self.stages
        needs = [("rm", "compare", s.rm and not s.compare), ("dpo", "compare", s.dpo and not s.compare),
                 ("dpo", "sft", s.dpo and not s.sft), ("rank", "rm", s.rank and not s.rm),
                 ("rank", "answer", s.rank and not s.answer), ("answer", "sft", s.answer and not s.sft),
                 ("judge", "answer", s.judge and not s.answer), ("rouge", "answer", s.rouge and not s.answer)]
        for stage, need, missing in needs:
            if missing:
                raise ValueError(f"stages.{stage} needs stages.{need}")
        if s.iterate and not s.sft:
            raise ValueError("stages.iterate needs stages.sft (it improves the SFT student)")
        if s.iterate and not s.rm and not s.iterate.judge:
            raise ValueError("stages.iterate needs a scorer: stages.rm (the reward model) or stages.iterate.judge "
                             "(a model, or rule:regex=PATTERN)")
        if s.iterate and s.rm and s.iterate.judge:
            raise ValueError("stages.iterate.judge: the study trains a reward model (stages.rm), which scores the "
                             "samples; leave judge out, or rm")
        if s.iterate and "en" not in s.generate.languages:
            raise ValueError("stages.iterate improves the English student: keep en in stages.generate.languages")
        if s.dpo and "en" not in s.generate.languages:
            raise ValueError("stages.dpo trains the English student (the comparisons are English): keep en in "
                             "stages.generate.languages")
        if s.compare and not s.compare.sources:
            raise ValueError("stages.compare.sources: give the 2 or more sources to score, e.g. [{name: teacher}, "
                             "{name: other, model: ...}]")
        if s.answer and s.answer.samples > 1 and s.answer.temperature == 0:
            raise ValueError("stages.answer: samples > 1 needs temperature > 0 (else every sample is the same)")
        if s.rank and s.answer and s.answer.samples < 2:
            raise ValueError("stages.rank needs stages.answer.samples >= 2")
        if s.judge and not self.data.benchmarks.judge:
            raise ValueError("stages.judge needs data.benchmarks.judge")
        if s.rank and self.data.benchmarks.judge and self.data.benchmarks.judge.questions == "mt-bench":
            raise ValueError("stages.rank ranks one-turn answers; MT-Bench's are two-turn: leave rank out")
        if s.judge and s.judge.mode == "single" and (s.judge.leaderboard or s.judge.human_db):
            raise ValueError("stages.judge: leaderboard and human_db read pairwise reviews; use mode: pairwise "
                             "(or a second pipeline for the single-answer grades)")
        if s.judge and s.judge.mode == "single" and len(self.judges) > 1:
            raise ValueError("stages.judge.mode single takes one judge; a list in models.judge is a panel of pairwise "
                             "judges")
        if s.rouge and not self.data.benchmarks.rouge:
            raise ValueError("stages.rouge needs data.benchmarks.rouge")
        for name, st in (("compare", s.compare), ("judge", s.judge)):
            if st and st.score_mode == "logprobs" and not all(j.startswith("local:") for j in self.judges):
                raise ValueError(f"stages.{name}.score_mode logprobs needs a local: judge")
        if self.backend.batch_api and not self.models.teacher.startswith("openai:"):
            raise ValueError("backend.batch_api works with an openai: teacher")
        return self

    @property
    def languages(self) -> list[str]:
        return self.stages.generate.languages

    @property
    def judges(self) -> list[str]:
        """models.judge as a list (one judge, or a panel)."""
        return [self.models.judge] if isinstance(self.models.judge, str) else list(self.models.judge)

    @property
    def translator(self) -> str:
        return self.models.translator or self.models.teacher


# ---------------------------------------------------------------- loading, with YAML positions


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """{YAML path: 1-based line} of every key and item, to name where an error is."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            out.update({p: n for p, n in _lines(v, path + (k.value,)).items() if p != path + (k.value,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(_lines(v, path + (i,)))
    return out


def _where(lines: dict[tuple, int], loc: tuple) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _dotted(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def load(path: str | Path) -> tuple[Pipeline, dict[tuple, int]]:
    """Parse and check a pipeline file; a UserError names file:line and the YAML path."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: pipeline file not found; see configs/quickstart.yaml for an example")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', None) or e}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}:1: a pipeline file is a mapping (name, models, data, stages, ...)")
    lines = _lines(node)
    try:
        pipe = Pipeline.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise UserError(f"{path}:{_where(lines, loc)}: {_dotted(loc)}: {msg}") from None
    _check_files(pipe, path, lines)
    return pipe, lines


def _check_files(pipe: Pipeline, path: Path, lines: dict[tuple, int]) -> None:
    from gpt4llm.eval.benchmarks import BENCHMARKS

    def exists(value: str | None, loc: tuple, named: tuple = ()) -> None:
        if value is None or value in named or value.startswith("hf:"):
            return
        if not resolve_path(value, path).exists():
            raise UserError(f"{path}:{_where(lines, loc)}: {_dotted(loc)}: {value}: file not found "
                            f"(paths are relative to the pipeline file)")

    exists(pipe.data.instructions, ("data", "instructions"), ("seeds",))
    for i, against in enumerate(pipe.stages.clean.against if pipe.stages.clean else []):
        exists(against, ("stages", "clean", "against", i), tuple(BENCHMARKS))
    for kind in ("judge", "rouge"):
        b = getattr(pipe.data.benchmarks, kind)
        if b:
            exists(b.questions, ("data", "benchmarks", kind, "questions"), ("seeds", *BENCHMARKS))
    s = pipe.stages
    if s.judge:
        exists(s.judge.reference, ("stages", "judge", "reference"), ("teacher",))
        exists(str(s.judge.human_db) if s.judge.human_db else None, ("stages", "judge", "human_db"))
    if s.stats:
        exists(s.stats.compare, ("stages", "stats", "compare"))
    for name, st in (("sft", s.sft), ("rm", s.rm), ("dpo", s.dpo)):
        if st and st.deepspeed:
            exists(st.deepspeed, ("stages", name, "deepspeed"))
    for lang in s.generate.languages:
        if not lang.strip():
            raise UserError(f"{path}:{_where(lines, ('stages', 'generate', 'languages'))}: stages.generate.languages: empty")


def resolve_path(value: str, pipeline_file: Path) -> Path:
    """A path in the pipeline file is relative to that file; a packaged config's paths fall back to
    the project checkout (configs/ lives beside src/)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    near = (pipeline_file.parent / p)
    return near if near.exists() or not Path(value).exists() else Path(value)
