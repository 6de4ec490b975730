"""`esa compare`: each criterion's value and verdict across the workspace, commits and `dvc exp run` experiments.
Registered on the `esa` group by esa.cli."""

from __future__ import annotations

from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors


@click.command("compare")
@click.argument("columns", nargs=-1)
@click.option("--phase", "--spec", "spec", help="Only this spec's criteria: a phase (3, phase3) or a spec name.")
@click.option("-n", "--commits", default=1, show_default=True,
              help="How many recent commits (each with its experiments) `dvc exp show` reads.")
@click.option("--only-changed", is_flag=True, help="Only criteria whose value or verdict differs between columns.")
@one_line_errors
def compare_command(columns: tuple[str, ...], spec: str | None, commits: int, only_changed: bool) -> None:
    """Criteria as rows, COLUMNS as columns: workspace, branch names, commit sha prefixes or experiment names
    (default: the workspace, the last -n commits and their experiments)."""
    from esa.notebook.compare import CompareError, compare, comparison_markdown
    from esa.notebook.history import read_history

    if spec and spec.isdigit():  # a bare number names the phase's default spec
        spec = f"phase{spec}"
    records, note = read_history(Path.cwd(), commits=commits)
    if note:
        click.echo(f"note: {note}", err=True)
    try:
        comparison = compare(records, spec=spec, names=columns, only_changed=only_changed)
    except CompareError as exc:
        raise EsaUsageError(str(exc)) from None
    if not comparison.columns:
        raise EsaUsageError("no graded runs yet: run `dvc repro` (it ends with each spec's grade stage)")
    if not comparison.rows:
        click.echo("no criterion differs between " + ", ".join(comparison.columns))
        return
    click.echo(comparison_markdown(comparison))
