"""`esa queue`: a sweep of params queued as DVC experiments, run on this node by DVC's queue workers, compared in
the notebook's experiments table. Registered on the `esa` group by esa.cli."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors


@click.command("queue")
@click.argument("targets", nargs=-1)
@click.option("-S", "--set-param", "settings", multiple=True, metavar="KEY=VALUES",
              help="A param of params.yaml and its values: key=a,b sweeps (also range(1,4)); "
                   "repeat for a cross product.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Experiments run at once by --start (`dvc queue start -j`).")
@click.option("--start", is_flag=True, help="Start the queue, wait until these experiments are done, compare them.")
@click.option("--name-prefix", metavar="P", help="Name the experiments P-1, P-2, … (P alone for a single one).")
@click.option("--timeout", type=click.FloatRange(min=0), help="With --start: give up waiting after this many seconds.")
@click.option("--dry-run", is_flag=True, help="Print the experiments and the dvc commands; queue nothing.")
@one_line_errors
def queue_command(targets: tuple[str, ...], settings: tuple[str, ...], jobs: int, start: bool,
                  name_prefix: str | None, timeout: float | None, dry_run: bool) -> None:
    """Queue one DVC experiment per point of the -S sweep, running TARGETS (stages, e.g. grade.phase1; default all)."""
    from esa.notebook.history import dvc_executable
    from esa.notebook.queue import QueueError, check_settings, check_targets, dvc_queue_args, expand, run_dvc

    root = Path.cwd()
    try:
        check_targets(targets, root)
        check_settings(settings, root)
        points = expand(settings)
    except QueueError as exc:
        raise EsaUsageError(str(exc)) from None
    dvc = dvc_executable()
    command = dvc_queue_args("dvc", settings, targets, name_prefix)
    click.echo(f"{len(points)} experiment{'s' if len(points) != 1 else ''}:")
    for number, point in enumerate(points, 1):
        name = f"{name_prefix}-{number}" if name_prefix and len(points) > 1 else name_prefix
        click.echo(f"  {number}. {' '.join(point)}" + (f"  ({name})" if name else ""))
    if dry_run:
        click.echo("would run: " + " ".join(shlex.quote(part) for part in command))
        if start:
            click.echo(f"would run: dvc queue start -j {jobs}, then wait for `dvc queue status`")
        return
    proc = run_dvc([dvc, *command[1:]], root)
    names = _queued_names_or_exit(proc, command)
    click.echo(f"queued: {', '.join(names)}")
    if not start:
        click.echo(f"run them with `dvc queue start -j {jobs}` (or `esa queue … --start`), follow with "
                   f"`dvc queue status`, then `esa compare {' '.join(names)}`")
        return
    _start_and_wait(dvc, root, names, jobs, timeout)
    _print_comparison(root, names, targets)


def _queued_names_or_exit(proc, command: list[str]) -> list[str]:
    from esa.notebook.queue import queued_names

    names = queued_names(proc.stdout)
    if proc.returncode != 0 or not names:
        reason = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        click.echo(f"error: {' '.join(command[:4])} failed: {reason}", err=True)
        sys.exit(1)
    return names


def _start_and_wait(dvc: str, root: Path, names: list[str], jobs: int, timeout: float | None) -> None:
    from esa.notebook.queue import run_dvc, wait_for

    proc = run_dvc([dvc, "queue", "start", "-j", str(jobs)], root)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        click.echo(f"error: dvc queue start failed: {reason}", err=True)
        sys.exit(1)
    click.echo(f"started {jobs} queue worker{'s' if jobs != 1 else ''}; waiting (`dvc queue status` shows the same)")
    try:
        statuses = wait_for(names, dvc, root, timeout=timeout, report=lambda line: click.echo(f"  {line}"))
    except TimeoutError as exc:
        click.echo(f"error: {exc}; they stay in the queue: `dvc queue status`, then `esa compare {' '.join(names)}`",
                   err=True)
        sys.exit(1)
    failed = [name for name, status in statuses.items() if status != "Success"]
    if failed:
        logs = "; ".join(f"`dvc queue logs {name}`" for name in failed)
        click.echo(f"error: not successful: {', '.join(f'{n} ({statuses[n]})' for n in failed)}; see {logs}", err=True)
        sys.exit(1)


def _print_comparison(root: Path, names: list[str], targets: tuple[str, ...]) -> None:
    """The experiments beside the commit they ran from, as `esa compare` prints them."""
    from esa.notebook.compare import CompareError, compare, comparison_markdown
    from esa.notebook.history import read_history

    records, note = read_history(root, commits=1)
    if note:
        click.echo(f"note: {note}; compare later with `esa compare {' '.join(names)}`")
        return
    base = next((r for r in records if r.kind == "commit" and r.grades), None)
    found = {r.name for r in records if r.kind == "experiment" and r.grades}
    graded = [name for name in names if name in found]  # queue order, as the sweep was listed
    if not graded:
        click.echo(f"note: no grades in {', '.join(names)} (did their stages write results/<spec>/grades.json?)")
        return
    specs = {t.removeprefix("grade.") for t in targets if t.startswith("grade.")}
    try:
        comparison = compare(records, spec=specs.pop() if len(specs) == 1 else None,
                             names=([base.rev] if base else []) + graded)
    except CompareError as exc:
        click.echo(f"note: {exc}; compare with `esa compare {' '.join(names)}`")
        return
    click.echo("")
    click.echo(comparison_markdown(comparison))
