"""How every `esa` command reports bad input: one line per problem on stderr and exit code 2, never a traceback.

Its own module so that command modules registered on the `esa` group (esa.export.cli) can use it without
importing esa.cli, which imports them.
"""

from __future__ import annotations

import functools
import sys

import click

from esa.spec import SpecErrors

USAGE_ERROR = 2


class EsaUsageError(Exception):
    """A one-line problem with the user's input (exit code 2)."""


def one_line_errors(func):
    """Bad input ends in one line per problem on stderr and exit code 2 — never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from esa.compile.plan import PlanError
        from esa.notebook.lock import LockError

        try:
            return func(*args, **kwargs)
        except SpecErrors as exc:
            for error in exc.errors:
                click.echo(f"error: {error}", err=True)
        except (PlanError, EsaUsageError, LockError) as exc:
            click.echo(f"error: {exc}", err=True)
        sys.exit(USAGE_ERROR)

    return wrapper
