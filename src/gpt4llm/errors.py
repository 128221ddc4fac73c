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
