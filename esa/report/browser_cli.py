"""`esa check-site`: open each rendered report page in headless Chromium and report what is broken."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from esa.cli_errors import USAGE_ERROR  # bad input or a missing tool: one line on stderr
from esa.report.browser import SiteCheckError, check_site


def _parse_min_charts(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, sep, count = value.rpartition("=")
        if not sep or not name or not count.isdigit():
            raise SiteCheckError(f"--min-charts wants PAGE=N, got {value!r}")
        out[name] = int(count)
    return out


@click.command("check-site")
@click.argument("site_dir", default="reports/_site", type=click.Path(path_type=Path))
@click.option("--screenshots", type=click.Path(path_type=Path, file_okay=False), help="Keep a PNG per page here.")
@click.option("--chromium", metavar="PATH", help="Chromium to drive (default: $ESA_CHROMIUM, then PATH).")
@click.option("--min-charts", multiple=True, metavar="PAGE=N", help="Page must show at least N charts.")
def check_site_command(
    site_dir: Path, screenshots: Path | None, chromium: str | None, min_charts: tuple[str, ...]
) -> None:
    """Check every page of SITE_DIR in a browser: loads offline, no JS errors, not blank, charts drawn.

    A page may declare its chart count with <meta name="esa-charts" content="N">.

    Exit 1 if a page fails, 2 if the check cannot run.
    """
    try:
        results = check_site(
            site_dir, chromium=chromium, screenshots=screenshots, min_charts=_parse_min_charts(min_charts)
        )
    except SiteCheckError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(USAGE_ERROR)
    for r in results:
        charts = f"{r.n_charts}/{r.expected_charts}" if r.expected_charts is not None else str(r.n_charts)
        line = f"{'✓' if r.ok else '✗'} {r.page}  charts: {charts}"
        click.echo(line + (f"  — {'; '.join(r.problems)}" if r.problems else ""))
    failed = sum(not r.ok for r in results)
    click.echo(
        f"{len(results) - failed}/{len(results)} pages ok" + (f"; screenshots in {screenshots}" if screenshots else "")
    )
    sys.exit(1 if failed else 0)
