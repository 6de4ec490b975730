"""`esa export PHASE`: paper-ready tables and figures of one phase. Registered on the `esa` group by esa.cli."""

from __future__ import annotations

from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors


@click.command("export")
@click.argument("phase")
@click.option("--format", "fmt", type=click.Choice(["latex", "markdown"]), default="latex", show_default=True,
              help="Table format: booktabs .tex files with exhibits.tex, or pipe-table .md files with README.md.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder to write (default exports/<phase>/).")
def export_command(phase: str, fmt: str, out: str | None) -> None:
    """Write PHASE's (e.g. phase1) criteria and results tables and its report's figures (SVG + 300-dpi PNG)."""
    one_line_errors(_export)(phase, fmt, out)


def _export(phase: str, fmt: str, out: str | None) -> None:
    from esa.export.exhibits import ExportError
    from esa.export.writer import export_phase

    try:
        written = export_phase(phase, fmt, Path(out) if out else None, root=Path.cwd())
    except ExportError as exc:  # a missing results file or unknown phase: one line, exit code 2
        raise EsaUsageError(str(exc)) from exc
    click.echo(f"wrote {len(written.tables)} tables and {len(written.figures) // 2} figures (SVG + PNG) "
               f"to {written.out}; index: {written.index}")
