"""A cluster plan as SLURM jobs: write their scripts to a folder, then submit them with `sbatch --parsable`, each
layer's arrays after (afterok) the previous layer's and the commit job after the last layer."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from esa.cluster.plan import ClusterError, ClusterPlan, StageJob
from esa.cluster.requests import Request
from esa.cluster.scripts import array_script, commit_script, sbatch_line


@dataclass(frozen=True)
class SlurmJob:
    key: str  # file stem and shell variable: layer0, layer1_2, commit
    script: Path
    after: tuple[str, ...]  # keys of the jobs it starts after
    stages: tuple[str, ...]


def layer_groups(layer: list[StageJob], requests: dict[str, Request]) -> list[tuple[Request, list[StageJob]]]:
    """The stages of one layer grouped by request: an array's tasks all ask for the same resources."""
    groups: dict[Request, list[StageJob]] = {}
    for stage in layer:
        groups.setdefault(requests[stage.name], []).append(stage)
    return list(groups.items())


def write_jobs(plan: ClusterPlan, requests: dict[str, Request], out: Path, root: Path, dvc: str,
               account: str | None = None) -> list[SlurmJob]:
    """Write one script per job array and the commit job's script into ``out``, plus submit.sh that submits them."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs: list[SlurmJob] = []
    previous: tuple[str, ...] = ()
    for number, layer in enumerate(plan.layers):
        groups = layer_groups(layer, requests)
        keys = []
        for index, (request, stages) in enumerate(groups):
            key = f"layer{number}" if len(groups) == 1 else f"layer{number}_{index}"
            script = out / f"{key}.sbatch"
            script.write_text(array_script(f"esa-{key}", stages, request, account, root, logs, waits=bool(previous)))
            jobs.append(SlurmJob(key, script, previous, tuple(stage.name for stage in stages)))
            keys.append(key)
        previous = tuple(keys)
    script = out / "commit.sbatch"
    script.write_text(commit_script("esa-commit", plan.stages, dvc, root, logs))
    jobs.append(SlurmJob("commit", script, previous, ()))
    (out / "submit.sh").write_text("#!/bin/bash\n# Submits the jobs in order; each waits for the ones it names.\n"
                                   "set -e\n" + "".join(f"{submit_line(job)}\n" for job in jobs))
    return jobs


def submit_line(job: SlurmJob) -> str:
    return sbatch_line(job.key, str(job.script), list(job.after))


def new_run_folder(root: Path) -> Path:
    """.esa/slurm/<timestamp>/, with a suffix when two submissions share a second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / ".esa" / "slurm"
    for suffix in ["", *(f"-{n}" for n in range(2, 100))]:
        folder = base / f"{stamp}{suffix}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise ClusterError(f"{base}: could not create a new folder for {stamp}")


def submit_jobs(jobs: list[SlurmJob], cwd: Path, sbatch: str | None = None) -> dict[str, str]:
    """Submit in order with `sbatch --parsable`; job ids by key. A rejected job is an error naming it."""
    sbatch = sbatch or shutil.which("sbatch")
    if sbatch is None:
        raise ClusterError("sbatch not on PATH: submit from a SLURM login node, or use --dry-run to write the scripts")
    ids: dict[str, str] = {}
    for job in jobs:
        cmd = [sbatch, "--parsable"]
        if job.after:
            cmd.append("--dependency=afterok:" + ":".join(ids[key] for key in job.after))
        done = subprocess.run([*cmd, str(job.script)], cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            submitted = f" (already submitted: {', '.join(ids.values())})" if ids else ""
            raise ClusterError(f"sbatch rejected {job.script.name}: {reason}{submitted}")
        ids[job.key] = done.stdout.strip().split(";")[0]  # "id" or "id;cluster"
    return ids
