"""The study from one pipeline file (``gpt4llm run``). ``RunSettings`` lives here, light, so that
``gpt4llm run --help`` imports no stage."""
from pathlib import Path
from typing import Annotated

from gpt4llm.settings import Opt, Settings


class RunSettings(Settings):
    """gpt4llm run: the whole study from one file (generate, compare, train sft/rm, answer, rank, judge, rouge, stats, report)."""

    pipeline: Annotated[Path, Opt(argument=True)]
    """The pipeline file (see configs/quickstart.yaml, configs/paper.yaml)."""
    output_dir: Annotated[Path | None, Opt("-o")] = None
    """Where the study goes (default: the file's output_dir, else runs/NAME)."""
    dry_run: bool = False
    """Print the plan, request counts and the cost estimate; run nothing."""
    quiet: Annotated[bool, Opt("-q")] = False
    """No progress bars."""

