"""``gpt4llm publish``'s settings and result, apart from the work, so the pipeline file and
``--help`` import nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from gpt4llm.settings import Opt, Settings


class PublishSettings(Settings):
    """gpt4llm publish: a dataset (Parquet + dataset card) or a checkpoint (model card) ready for the Hugging Face Hub."""

    source: Annotated[Path, Opt(argument=True, pipeline=True)]
    """A data file (Alpaca, comparison, TRL pairs/KTO/messages), a checkpoint directory, or a study directory (gpt4llm run's output)."""
    to: Annotated[Path, Opt("-o", pipeline=True)]
    """Output directory, laid out as a Hub repo; refused when it holds files, unless --overwrite (pipeline: <output_dir>/publish)."""
    push_to_hub: str | None = None
    """Also upload to this Hub repo (user/name; a study's models go to user/name-<model>) with your token (HF_TOKEN or `hf auth login`)."""
    private: bool = True
    """Create new Hub repos private: read the card and the teacher's terms first, then make it public on the Hub."""
    license: str = "cc-by-nc-4.0"
    """The cards' license (a Hub license id); default CC BY-NC 4.0, as the paper released its GPT-4 data."""
    language: list[str] | None = None
    """Languages of the data (ISO codes); default: the records' meta.language, else by script (zh, ja, ko), else en."""
    name: str | None = None
    """The dataset card's title (default: the study's name, else the file's)."""
    journal: Annotated[Path | None, Opt(pipeline=True)] = None
    """The journal the data's calls went through (default: <file>.journal.sqlite beside it, or the study's journal.sqlite)."""
    max_shard_mb: float = Field(500.0, gt=0)
    """Parquet shard size in MB of Arrow data (datasets' push_to_hub: 500)."""
    overwrite: Annotated[bool, Opt(pipeline=True)] = False
    """Replace --to when it already holds files."""


@dataclass
class PublishResult:
    out: Path
    kind: str
    """dataset, model or study."""
    configs: list[dict] = field(default_factory=list)
    """name, rows, files of each dataset config."""
    models: list[dict] = field(default_factory=list)
    """name, path, files of each model."""
    skipped: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
