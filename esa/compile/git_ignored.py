"""Outputs that must live in git (`cache: false`: grades, summaries) but that the project's .gitignore hides."""

from __future__ import annotations

import subprocess
from pathlib import Path

# The grade stage's small tables that a clone must hold (the pages and the README read them), besides grades.json.
IN_GIT = ("summary.json", "conditions.parquet", "scaling.parquet", "architecture_layers.parquet", "pruning.parquet",
          "adaptation.parquet", "adaptation_curves.parquet", "faults.parquet", "attacks.parquet",
          "superweights.parquet", "head_critical.parquet", "probe_accuracy.parquet", "fingerprint.parquet")
GITIGNORE_LINES = ("/results/*", "!/results/*/", "/results/*/*", "!/results/*/grades.json",
                   *(f"!/results/*/{name}" for name in IN_GIT))


def ignored_paths(root: Path, paths: list[str]) -> list[str]:
    """The paths git would ignore in ``root``; none when ``root`` is not a git work tree or git is missing."""
    if not paths:
        return []
    try:
        proc = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=root, input="\n".join(paths),
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode not in (0, 1):  # 128: not a git repository
        return []
    return [line for line in proc.stdout.splitlines() if line]


def ignored_warning(root: Path, paths: list[str]) -> str | None:
    """One line when git ignores an output kept out of the DVC cache: without git, the commit history (`esa log`,
    `esa compare`, `dvc exp show`) would have no grades for it."""
    hidden = ignored_paths(root, paths)
    if not hidden:
        return None
    more = f" and {len(hidden) - 1} more" if len(hidden) > 1 else ""
    return (f"{hidden[0]}{more} is git-ignored but kept out of the DVC cache (cache: false), so commits and "
            f"experiments would not record it; let .gitignore keep it: {' '.join(GITIGNORE_LINES)}")
