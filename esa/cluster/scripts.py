"""The text of SLURM batch scripts: one job array per group of independent stages (SLURM_ARRAY_TASK_ID picks the
stage) and the final job that records the outputs with `dvc commit`."""

from __future__ import annotations

import shlex
from pathlib import Path

from esa.cluster.plan import StageJob
from esa.cluster.requests import Request


def request_lines(request: Request, account: str | None) -> list[str]:
    """#SBATCH lines for a request; a field left out is the scheduler's default."""
    lines = []
    if request.partition:
        lines.append(f"--partition={request.partition}")
    if account:
        lines.append(f"--account={account}")
    if request.cpus:
        lines.append(f"--cpus-per-task={request.cpus}")
    if request.mem_gb:
        lines.append(f"--mem={round(request.mem_gb * 1024)}M")
    if request.gpus:
        lines.append(f"--gres=gpu:{request.gpus}")
    if request.time_minutes:
        lines.append(f"--time={request.time_minutes}")
    return [f"#SBATCH {line}" for line in lines]


def _header(name: str, root: Path, log: str, waits: bool) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --chdir={root}", f"#SBATCH --output={log}"]
    if waits:  # a failed upstream job cancels this one instead of leaving it pending for ever
        lines.append("#SBATCH --kill-on-invalid-dep=yes")
    return lines


def array_script(name: str, stages: list[StageJob], request: Request, account: str | None, root: Path,
                 logs: Path, waits: bool) -> str:
    """One array task per stage, each running the stage's own command in its wdir on the shared project folder."""
    lines = [*_header(name, root, f"{logs}/%x-%A_%a.out", waits), f"#SBATCH --array=0-{len(stages) - 1}",
             *request_lines(request, account), "",
             "# One array task per stage of this layer: SLURM_ARRAY_TASK_ID picks the stage's command from dvc.yaml.",
             "set -eo pipefail", 'case "${SLURM_ARRAY_TASK_ID:?not an array task}" in']
    for index, stage in enumerate(stages):
        lines += [f"  {index})",
                  f"    echo {shlex.quote(f'esa: stage {stage.name}')}",
                  f"    cd {shlex.quote(str(root / stage.wdir))}",
                  *stage.cmd.splitlines(),  # as written: indenting could break a here-document
                  "    ;;"]
    lines += ['  *) echo "esa: no stage for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac", ""]
    return "\n".join(lines)


def commit_script(name: str, stages: list[StageJob], dvc: str, root: Path, logs: Path) -> str:
    """`dvc commit -f` of every stage run, so `dvc status` and `dvc repro` see their outputs as up to date."""
    names = " ".join(shlex.quote(stage.name) for stage in stages)
    return "\n".join([*_header(name, root, f"{logs}/%x-%j.out", waits=True), "",
                      "# Every stage ran: record their outputs in dvc.lock and the DVC cache.",
                      "set -eo pipefail", f"{shlex.quote(dvc)} commit -f {names}", f"{shlex.quote(dvc)} status", ""])


def sbatch_line(variable: str, script: str, after: list[str]) -> str:
    """A shell line submitting ``script`` and keeping its job id in ``variable`` (see submit.sh)."""
    waits = f" --dependency=afterok:{':'.join(f'${name}' for name in after)}" if after else ""
    return f"{variable}=$(sbatch --parsable{waits} {shlex.quote(script)})"
