"""Errors a person can act on (DESIGN.md principle 7).

A ``UserError`` is printed as one line (what, where, what to do) and exits with code 2;
the CLI shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration: one line for the user, exit code 2."""

    exit_code = 2


class BudgetExceeded(UserError):
    """The spending cap was reached; the run is resumable (exit code 3)."""

    exit_code = 3


class PartialFailure(Exception):
    """The stage finished but some model calls failed; they are listed in errors.jsonl."""

    exit_code = 1


# Optional dependencies: the import name -> the extra that installs it (pyproject.toml).
EXTRAS = {"trl": "train", "tensorboard": "train", "vllm": "vllm", "sglang": "sglang", "playwright": "dev",
          "pytest": "dev", "wandb": None, "deepspeed": None, "bitsandbytes": None, "flash_attn": None}


def missing_dependency(e: ModuleNotFoundError) -> str:
    """One line for an optional package that is not installed: what, and the pip command."""
    name = (e.name or str(e)).split(".")[0]
    extra = EXTRAS.get(name)
    how = f"pip install 'gpt4llm[{extra}]'" if extra else f"pip install {name.replace('_', '-')}"
    return f"the optional package '{name}' is not installed; install it with: {how}"


def require(module: str, feature: str) -> None:
    """Fail early, with one line, when ``feature`` needs an optional ``module``."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        e = ModuleNotFoundError(name=module)
        raise MissingDependency(f"{feature}: {missing_dependency(e)}")


class MissingDependency(UserError):
    """An optional package a feature needs is not installed (exit code 2)."""


def run_main(entry, debug: bool) -> int:
    """Run the command line and turn every way it can end into an exit code and at most one line on
    stderr: bad input 2, failed calls 1, a reached budget 3, a missing optional package 2, Ctrl-C
    130, anything unexpected 1 (``--debug`` shows the traceback instead)."""
    import sys

    try:
        rv = entry()  # the parser's usage errors come back here too, to print as one line like the rest
        return rv if isinstance(rv, int) else 0
    except (UserError, PartialFailure) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:
        if debug:
            raise
        print(f"error: {missing_dependency(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue (finished calls are journaled)", file=sys.stderr)
        return 130
    except Exception as e:
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # the parser's: a bad flag or value
            if type(e).__name__ == "NoArgsIsHelpError":
                print(e.format_message(), file=sys.stderr)
            else:
                ctx = getattr(e, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                print(f"error: {e.format_message().replace('Value error, ', '')}{hint}", file=sys.stderr)
            return e.exit_code
        if type(e).__name__ == "Abort":  # Ctrl-C while the parser waits
            return 130
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", file=sys.stderr)
        return 1
