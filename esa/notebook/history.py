"""Experiment history as DVC records it: the workspace, recent commits and their `dvc exp run` experiments.

Each record carries the params and every phase's grades.json (the grade stage's metrics file), read from
`dvc exp show --json`. Without a git/DVC history (a fresh folder), only the workspace's files are read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GRADES_FILE = "grades.json"


@dataclass
class RunRecord:
    rev: str  # "workspace" or a commit sha
    kind: str  # "workspace" | "commit" | "experiment"
    name: str | None = None  # branch or experiment name
    timestamp: str | None = None
    baseline: str | None = None  # the commit an experiment was run from
    parent: str | None = None  # the revision this one was made from, to tell which stages ran in this one
    params: dict[str, Any] = field(default_factory=dict)
    grades: dict[str, dict[str, Any]] = field(default_factory=dict)  # "phase1" -> grades.json

    @property
    def label(self) -> str:
        if self.kind == "workspace":
            return "workspace"
        if self.kind == "experiment":
            return f"experiment {self.name or self.rev[:7]} (from {(self.baseline or '?')[:7]})"
        return f"commit {self.rev[:7]}" + (f" ({self.name})" if self.name else "")


def _phase_of(path: str) -> str | None:
    parts = Path(path).parts
    if len(parts) == 3 and parts[0] == "results" and parts[2] == GRADES_FILE:
        return parts[1]
    return None


def _record(entry: dict[str, Any], kind: str, baseline: str | None = None, parent: str | None = None) -> RunRecord:
    data = entry.get("data") or {}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    grades = {}
    for path, metric in (data.get("metrics") or {}).items():
        phase = _phase_of(path)
        if phase and isinstance(metric, dict) and isinstance(metric.get("data"), dict):
            grades[phase] = metric["data"]
    return RunRecord(rev=str(entry.get("rev")), kind=kind, name=entry.get("name"), timestamp=data.get("timestamp"),
                     baseline=baseline, parent=parent, params=params, grades=grades)


def parse_exp_show(rows: list[dict[str, Any]]) -> list[RunRecord]:
    """Records from `dvc exp show --json` output (workspace first, then commits, each with its experiments).

    Commits come newest first along first parents (`-n`), so each commit's parent is the next commit row and the
    workspace's is the first; an experiment's is its baseline. The oldest commit shown has none.
    """
    commits = [str(row.get("rev")) for row in rows if row.get("rev") != "workspace"]
    records = []
    for row in rows:
        rev = str(row.get("rev"))
        if rev == "workspace":
            records.append(_record(row, "workspace", parent=commits[0] if commits else None))
        else:
            later = commits[commits.index(rev) + 1:]
            records.append(_record(row, "commit", parent=later[0] if later else None))
        for experiment in row.get("experiments") or []:
            for run in experiment.get("revs") or []:
                records.append(_record({**run, "name": run.get("name") or experiment.get("name")}, "experiment",
                                       baseline=rev, parent=rev))
    return records


def workspace_record(root: Path) -> RunRecord:
    """The workspace read from its files, for projects with no git/DVC history yet."""
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    grades = {path.parent.name: json.loads(path.read_text())
              for path in sorted((root / "results").glob(f"*/{GRADES_FILE}"))}
    return RunRecord(rev="workspace", kind="workspace", params=params or {}, grades=grades)


def dvc_executable() -> str:
    """The dvc installed beside this Python (a venv's bin/), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def read_history(root: Path, commits: int = 10, dvc: str | None = None) -> tuple[list[RunRecord], str | None]:
    """(records, note): DVC's view when available, else the workspace alone with a note saying why."""
    cmd = [dvc or dvc_executable(), "exp", "show", "--json", "-n", str(commits)]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return [workspace_record(root)], f"no experiment history: {' '.join(cmd)} could not run ({exc})"
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return [workspace_record(root)], f"no experiment history: {reason}"
    try:
        rows = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return [workspace_record(root)], "no experiment history: `dvc exp show --json` printed no JSON"
    return parse_exp_show(rows), None
