"""`esa submit --slurm [TARGET…]`: run the stages that are not up to date on a SLURM cluster. Registered on the
`esa` group by esa.cli."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from esa.cli_errors import EsaUsageError, one_line_errors


@click.command("submit")
@click.argument("targets", nargs=-1)
@click.option("--slurm", is_flag=True, help="Submit to SLURM with sbatch (the one scheduler esa knows).")
@click.option("--dry-run", is_flag=True, help="Write the job scripts and print the sbatch commands; submit nothing.")
@click.option("--cpus", type=click.IntRange(min=1), help="CPU cores per stage, where its spec says none.")
@click.option("--mem", "mem_gb", type=click.FloatRange(min=0, min_open=True),
              help="GiB of memory per stage, where its spec says none.")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per stage, where its spec says none.")
@click.option("--time", "time_minutes", type=click.IntRange(min=1), help="Minutes per stage, where its spec says none.")
@click.option("--partition", help="Partition, where the spec says none.")
@click.option("--account", help="Account charged for every job.")
@one_line_errors
def submit_command(targets: tuple[str, ...], slurm: bool, dry_run: bool, cpus: int | None, mem_gb: float | None,
                   gpus: int | None, time_minutes: int | None, partition: str | None, account: str | None) -> None:
    """Submit the stages of dvc.yaml that are not up to date (those TARGETS need, e.g. grade.phase1) as SLURM job
    arrays, one per layer of independent stages, then a job that runs `dvc commit` on them."""
    from esa.cluster.plan import ClusterError, read_plan
    from esa.cluster.requests import Request, recorded_spec_requests, stage_requests
    from esa.cluster.slurm import new_run_folder, submit_jobs, submit_line, write_jobs
    from esa.notebook.history import dvc_executable

    if not slurm:
        raise EsaUsageError("name the scheduler: `esa submit --slurm` (SLURM is the one supported)")
    root = Path.cwd()
    flags = Request(cpus, mem_gb, gpus, time_minutes, partition)
    try:
        plan = read_plan(root, list(targets))
        if not plan.layers:
            click.echo("up to date: nothing to submit (`dvc status` agrees)")
            return
        if not dry_run:
            import shutil

            if shutil.which("sbatch") is None:
                raise ClusterError("sbatch not on PATH: submit from a SLURM login node, "
                                   "or use --dry-run to write the scripts")
        requests = stage_requests([s.name for s in plan.stages], recorded_spec_requests(root), flags)
        out = new_run_folder(root)
        jobs = write_jobs(plan, requests, out, root, dvc_executable(), account)
        shown = out.relative_to(root)
        summary = (f"{len(plan.stages)} stages in {len(plan.layers)} layers → {len(jobs) - 1} job arrays "
                   f"and a commit job; scripts in {shown}/")
        if dry_run:
            click.echo(summary)
            for job in jobs:
                click.echo(submit_line(job))
            click.echo(f"dry run: nothing submitted; submit with `bash {shlex.quote(str(shown / 'submit.sh'))}`")
            return
        ids = submit_jobs(jobs, root)
    except ClusterError as exc:
        raise EsaUsageError(str(exc)) from None
    click.echo(summary)
    for job in jobs:
        what = f"{len(job.stages)} stages" if job.stages else "dvc commit"
        click.echo(f"submitted {job.key}: job {ids[job.key]} ({what})")
    click.echo(f"watch: squeue --jobs={','.join(ids.values())}   logs: {shown / 'logs'}/")
    click.echo("afterwards: dvc status (the commit job records the outputs in dvc.lock)")
