"""The `esa` command line: compile specs to DVC stages, grade criteria, render reports."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from esa.spec import SpecErrors

USAGE_ERROR = 2


class EsaUsageError(Exception):
    """A one-line problem with the user's input (exit code 2)."""


def one_line_errors(func):
    """Bad input ends in one line per problem on stderr and exit code 2 — never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from esa.compile import PlanError

        try:
            return func(*args, **kwargs)
        except SpecErrors as exc:
            for error in exc.errors:
                click.echo(f"error: {error}", err=True)
        except (PlanError, EsaUsageError) as exc:
            click.echo(f"error: {exc}", err=True)
        sys.exit(USAGE_ERROR)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="esa")
def main() -> None:
    """esa — find, validate and use the few transformer weights that matter most."""


@main.command("compile")
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Exit 1 if dvc.yaml/params.yaml differ from what the specs compile to.")
@click.option("--fresh", is_flag=True, help="Forget the specs recorded in dvc.yaml; compile only those given.")
@one_line_errors
def compile_command(specs: tuple[str, ...], check: bool, fresh: bool) -> None:
    """Compile SPECS (plus those dvc.yaml was compiled from) into dvc.yaml and params.yaml."""
    from esa.compile import compile_specs, resolve_sources

    root = Path.cwd()
    for spec in specs:
        if not Path(spec).exists():
            raise EsaUsageError(f"{spec}: no such spec file")
    result = compile_specs(resolve_sources(list(specs), root, fresh=fresh), root)
    if check:
        stale = result.stale_files(root)
        if stale:
            click.echo(f"stale: {', '.join(stale)} (run `esa compile`)", err=True)
            sys.exit(1)
        click.echo(f"up to date: {len(result.stages)} stages from {', '.join(result.sources)}")
        return
    result.write(root)
    click.echo(f"wrote dvc.yaml and params.yaml: {len(result.stages)} stages from {', '.join(result.sources)}")


@main.command("schema")
@click.option("--out", default="specs/schema.json", show_default=True, type=click.Path(dir_okay=False))
def schema_command(out: str) -> None:
    """Write the JSON schema of spec files (editors use it for completion and checks)."""
    from esa.spec import Spec

    schema = Spec.model_json_schema()
    schema["title"] = "esa phase spec"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {out}")


@main.command("grade")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--quiet", is_flag=True, help="Write grades.json without printing the table.")
@one_line_errors
def grade_command(spec: str, quiet: bool) -> None:
    """Grade every criterion of SPEC from its artifacts into results/<phase>/grades.json."""
    from esa.report.grade import grade_spec, print_grades
    from esa.spec import load_spec

    if not Path(spec).exists():
        raise EsaUsageError(f"{spec}: no such spec file")
    grades, path = grade_spec(load_spec(spec), Path.cwd())
    if not quiet:
        print_grades(grades)
    click.echo(f"wrote {path}")


@main.command("report")
@click.argument("phase")
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file to write (default reports/_site/<phase>.html).")
@click.option("--no-quarto", is_flag=True, help="Use the offline renderer even when quarto is on PATH.")
@one_line_errors
def report_command(phase: str, out: str | None, no_quarto: bool) -> None:
    """Render reports/<PHASE>.qmd (e.g. phase1) to one self-contained HTML file."""
    from esa.report.render import render_qmd

    name = phase if phase.startswith("phase") else f"phase{phase}"
    qmd = Path("reports") / f"{name}.qmd"
    if not qmd.exists():
        raise EsaUsageError(f"{qmd}: no such report page")
    target = Path(out) if out else Path("reports/_site") / f"{name}.html"
    html = render_qmd(qmd, target, project_root=Path.cwd(), use_quarto=not no_quarto)
    grades = Path("results") / name / "grades.json"
    if grades.exists():
        from esa.report.grade import print_grades

        print_grades(json.loads(grades.read_text()))
    click.echo(f"report: {Path(html).resolve()}")


if __name__ == "__main__":
    main()
