"""The ``gpt4llm`` command. Thin: maps sub-commands to stage functions, prints summaries.

Errors: a ``UserError`` prints one line and exits 2 (3 for a reached budget); ``--debug``
anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gpt4llm import __version__
from gpt4llm.backends import DEFAULT_MODEL

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Instruction tuning with a teacher LLM, as in 'Instruction Tuning with GPT-4'.")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpt4llm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also accepted after the sub-command).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    pass


@app.command()
def generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.jsonl; .json/.parquet by suffix or --format).")],
    input: Annotated[str, typer.Option("--input", "-i", help="Alpaca records: .json/.jsonl/.parquet, hf:NAME[:split], or 'seeds' (the bundled 40).")] = "seeds",
    teacher: Annotated[str, typer.Option("--teacher", "-m", help="local:NAME|PATH or openai:MODEL.")] = DEFAULT_MODEL,
    limit: Annotated[Optional[int], typer.Option(help="Answer only the first N records.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Max completion tokens (paper: 512).")] = 512,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (paper: 1.0; 0 = greedy).")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling (paper: 1.0).")] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed, passed to the backend.")] = None,
    language: Annotated[Optional[str], typer.Option(help="Answer in this language (zh, or a name).")] = None,
    drop_truncated: Annotated[bool, typer.Option("--drop-truncated", help="Leave out answers cut at --max-tokens (the paper kept them).")] = False,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Keep the first of duplicate records instead of refusing the file.")] = False,
    format: Annotated[Optional[str], typer.Option("--format", help="jsonl (default), json (like alpaca_gpt4_data.json) or parquet.")] = None,
    journal: Annotated[Optional[Path], typer.Option(help="Journal file (default <output>.journal.sqlite).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="local: prompts per batch (16-32 is fastest on a CPU; see README).")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = 16,
    base_url: Annotated[Optional[str], typer.Option(help="openai: endpoint (default $OPENAI_BASE_URL or OpenAI).")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="openai: seconds per request.")] = 600.0,
    quiet: Quiet = False,
) -> None:
    """Answer instructions with a teacher model (the paper's Algorithm 1)."""
    from gpt4llm import generate as stage
    from gpt4llm.backends.base import GenParams

    cfg = stage.GenerateConfig(
        output=output, input=input, teacher=teacher, limit=limit, language=language,
        params=GenParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed),
        drop_truncated=drop_truncated, dedupe=dedupe, format=format, journal=journal, quiet=quiet,
        backend_options=dict(batch_size=batch_size, concurrency=concurrency, base_url=base_url, timeout=timeout))
    s = stage.run(cfg)
    c = s.calls
    lines = [
        f"wrote {s.written} records to {s.output}",
        f"  truncated at max_tokens: {s.truncated}" + (f" (dropped {s.dropped_truncated})" if s.dropped_truncated else " (kept, meta.finish_reason='length')"),
        f"  failed: {s.failed}" + (f" (listed in {s.errors_file}; re-run to retry)" if s.failed else ""),
        f"  model calls: {c.called} made, {c.cached} from the journal",
        f"  tokens: {c.prompt_tokens:,} prompt + {c.completion_tokens:,} completion",
        f"  time: {c.seconds:.1f} s",
    ]
    typer.echo("\n".join(lines))
    if s.failed:
        raise typer.Exit(1)


def main() -> None:
    debug = "--debug" in sys.argv[1:] or os.environ.get("GPT4LLM_DEBUG") == "1"
    if debug:
        sys.argv = [a for a in sys.argv if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # library chatter (hub retries, load reports) would bury our one-line errors
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("huggingface_hub", "datasets", "transformers", "httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from gpt4llm.errors import UserError

    try:
        app()
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
