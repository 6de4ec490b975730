"""The `esa` command line: compile specs to DVC stages, grade criteria, render reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors

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
    from esa.compile.compiler import compile_specs, resolve_sources

    root = Path.cwd()
    for spec in specs:
        if not Path(spec).exists():
            raise EsaUsageError(f"{spec}: no such spec file")
    result = compile_specs(resolve_sources(list(specs), root, fresh=fresh), root)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if check:
        stale = result.stale_files(root)
        if stale:
            click.echo(f"stale: {', '.join(stale)} (run `esa compile`)", err=True)
            sys.exit(1)
        click.echo(f"up to date: {len(result.stages)} stages from {', '.join(result.sources)}")
        return
    result.write(root)
    click.echo(f"wrote dvc.yaml and params.yaml: {len(result.stages)} stages from {', '.join(result.sources)}")
    from esa.compile.git_ignored import ignored_warning

    hidden = ignored_warning(root, result.uncached)
    if hidden:
        click.echo(f"warning: {hidden}", err=True)


@main.command("show")
@click.argument("spec", type=click.Path(dir_okay=False))
@one_line_errors
def show_command(spec: str) -> None:
    """Print SPEC's runs (sweeps expanded), criteria and the stages `esa compile` emits for it."""
    import shutil

    from esa.show.page import show_spec

    if not Path(spec).exists():
        raise EsaUsageError(f"{spec}: no such spec file")
    click.echo(show_spec(spec, Path.cwd(), width=shutil.get_terminal_size((100, 24)).columns))


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
@one_line_errors
def grade_command(spec: str) -> None:
    """Print SPEC's criteria table from results/<spec name>/grades.json, which only the grade.<name> stage
    writes (`dvc repro grade.<name>` regrades): printing never touches a DVC output."""
    from esa.grading.grade import print_grades
    from esa.grading.stored import StoredGradesError, grades_path, read_grades, regrade_hint, stale_reasons
    from esa.spec import load_spec

    if not Path(spec).exists():
        raise EsaUsageError(f"{spec}: no such spec file")
    loaded = load_spec(spec)
    try:
        grades = read_grades(loaded, Path.cwd())
    except StoredGradesError as exc:
        raise EsaUsageError(str(exc)) from None
    path = grades_path(loaded, Path(".")).as_posix()
    try:
        print_grades(grades)
    except (KeyError, TypeError, ValueError) as exc:  # a hand-edited or foreign file: say which, no traceback
        raise EsaUsageError(f"{path}: unexpected content ({type(exc).__name__}: {exc}); {regrade_hint(loaded)}") from None
    stale = stale_reasons(loaded, grades, Path.cwd())
    if stale:
        click.echo(f"stale: {'; '.join(stale)}; {regrade_hint(loaded)}")
    else:
        click.echo(f"from {path}, graded {grades.get('graded_at') or 'at an unknown time'}")


@main.command("lock")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--amend", "reason", metavar="REASON",
              help="Register changed hypotheses/criteria again; REASON is kept with the superseded lock.")
@one_line_errors
def lock_command(spec: str, reason: str | None) -> None:
    """Pre-register SPEC: store the sha256 of its hypotheses and criteria in <spec>.lock (commit it)."""
    from esa.notebook.lock import write_lock

    if not Path(spec).exists():
        raise EsaUsageError(f"{spec}: no such spec file")
    from esa.spec import load_spec

    name = load_spec(spec).name
    path, message = write_lock(spec, results_dir=Path("results") / name, amend_reason=reason)
    click.echo(message)
    if Path("dvc.yaml").exists():
        # The grade stage depends on the lock once it exists: recompile so `dvc repro` regrades.
        from esa.compile.compiler import compile_specs, read_sources, relative_source

        sources = read_sources(Path("dvc.yaml"))
        if relative_source(spec, Path.cwd()) in sources:
            compile_specs(sources, Path.cwd()).write(Path.cwd())
            click.echo(f"recompiled dvc.yaml: grade.{name} now depends on {path.as_posix()}")


@main.command("log")
@click.option("--phase", help="Only this spec's runs: a phase (3, phase3) or a spec name (real-phase1).")
@click.option("-n", "--commits", default=10, show_default=True, help="How many recent commits (with their experiments).")
@one_line_errors
def log_command(phase: str | None, commits: int) -> None:
    """Print the research log: one entry per graded run (workspace, commits, `dvc exp run` experiments)."""
    from esa.notebook.history import read_history
    from esa.notebook.log import build_log, entry_markdown

    if phase and phase.isdigit():  # a bare number names the phase's default spec
        phase = f"phase{phase}"
    records, note = read_history(Path.cwd(), commits=commits)
    entries = build_log(records, phase)
    if note:
        click.echo(f"note: {note}", err=True)
    if not entries:
        raise EsaUsageError("no graded runs yet: run `dvc repro` (it ends with each phase's grade stage), then `esa log` again")
    click.echo(f"# Research log ({len(entries)} runs, newest first)\n")
    click.echo("\n\n".join(entry_markdown(entry) for entry in entries))


@main.command("report")
@click.argument("page", required=False)
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file for a single PAGE (default reports/_site/<page>.html).")
@click.option("--no-quarto", is_flag=True, help="Use the offline renderer even when quarto is on PATH.")
@one_line_errors
def report_command(page: str | None, out: str | None, no_quarto: bool) -> None:
    """Render the lab notebook (reports/) to reports/_site/, or only PAGE (e.g. phase1, index, or a spec name)."""
    from esa.report.render import ReportError
    from esa.report.site import html_name, nav_bar, read_config, render_site, with_variants

    reports = Path("reports")
    try:
        config = read_config(reports)
        if page is None:
            if out:
                raise EsaUsageError("--out needs a PAGE (the whole site goes to reports/_site/)")
            paths = render_site(reports, Path.cwd(), use_quarto=not no_quarto)
        else:
            from esa.report.render import render_qmd

            config, variants = with_variants(config, Path.cwd())
            name = f"phase{page}" if page.isdigit() else page
            variant = next((v for v in variants if v.name == name), None)
            qmd = reports / (variant.page if variant else f"{name}.qmd")
            if not qmd.exists():
                known = f" (spec variants: {', '.join(v.name for v in variants)})" if variants else ""
                raise EsaUsageError(f"{qmd}: no such report page{known}")
            current = variant.qmd if variant else qmd.name
            target = Path(out) if out else reports / config.output_dir / html_name(current)
            paths = [render_qmd(qmd, target, project_root=Path.cwd(), use_quarto=not no_quarto,
                                before_body=nav_bar(config, current), params=variant.params if variant else None)]
    except ReportError as exc:
        raise EsaUsageError(str(exc).splitlines()[0]) from None
    for name in sorted({Path(p).stem for p in paths}):  # phase and variant pages: their spec's grades
        grades = Path("results") / name / "grades.json"
        if grades.exists():
            from esa.grading.grade import print_grades

            print_grades(json.loads(grades.read_text()))
    for path in paths:
        click.echo(f"report: {Path(path).resolve()}")
    index = next((p for p in paths if Path(p).stem == "index"), None)
    if page is None and index is not None:
        click.echo(f"lab notebook (open this): {Path(index).resolve()}")


def _register_commands() -> None:
    from esa.cluster.cli import submit_command
    from esa.export.cli import export_command
    from esa.notebook.compare_cli import compare_command
    from esa.notebook.queue_cli import queue_command
    from esa.readme.cli import readme_command
    from esa.report.browser_cli import check_site_command

    main.add_command(check_site_command)
    main.add_command(compare_command)
    main.add_command(export_command)
    main.add_command(queue_command)
    main.add_command(readme_command)
    main.add_command(submit_command)


_register_commands()

if __name__ == "__main__":
    main()
