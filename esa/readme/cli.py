"""`esa readme [FILE]`: regenerate a Markdown file's result tables; `--check` only reports. Registered by esa.cli."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors


@click.command("readme")
@click.argument("file", default="README.md", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a table or a quoted number is out of date.")
def readme_command(file: str, check: bool) -> None:
    """Write FILE's `esa:table` blocks from the committed results they name, and check that every number in its
    `esa:cites` blocks is found, at its quoted precision, in the files they cite."""
    one_line_errors(_readme)(Path(file), check)


def _readme(path: Path, check: bool) -> None:
    from esa.readme.check import check_file

    if not path.is_file():
        raise EsaUsageError(f"{path}: no such file")
    outcome = check_file(path)  # result paths are relative to the file's folder, the project root
    if outcome.errors:
        raise EsaUsageError("; ".join(outcome.errors))
    if not check and outcome.text != path.read_text(encoding="utf-8"):
        path.write_text(outcome.text, encoding="utf-8")
        click.echo(f"{path}: rewrote {len(outcome.stale)} table(s) from the results", err=bool(outcome.unsupported))
        outcome.stale = []
    for problem in outcome.stale + outcome.unsupported:
        click.echo(problem, err=True)
    if outcome.stale or outcome.unsupported:
        sys.exit(1)
    click.echo(f"{path}: every generated table matches its results and every quoted number is cited")
