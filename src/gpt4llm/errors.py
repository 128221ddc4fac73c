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
