"""Regenerate this fixture's graded outputs (analysis.json, stability_vs_k.parquet, grades.json) from its committed
per-seed scoring outputs, with the real grading code.

    .venv/bin/python tests/report/data/phase2/make_fixture.py

The per-seed inputs under results/phase2/<run>/seed<n>/ (topk.parquet, tensor_stats.parquet, summary.json,
sampling.json, ...) come from a real scoring run of the tiny model and are never rewritten here; only what
`python stages/grade.py specs/phase2.yaml` writes from them is.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # regrade.py, shared by the fixtures
from regrade import print_statuses, regrade  # noqa: E402
PHASE = "phase2"
GRADED = ("analysis.json", "stability_vs_k.parquet", "grades.json")


def build(project: Path) -> None:
    """The specs and every run's per-seed inputs, without the graded outputs."""
    shutil.copytree(HERE / "specs", project / "specs")
    for run in (p for p in (HERE / "results" / PHASE).iterdir() if p.is_dir()):
        shutil.copytree(run, project / "results" / PHASE / run.name)


def regenerate(into: Path = HERE / "results" / PHASE) -> dict:
    """Grade the fixture in a scratch project and copy its graded outputs into ``into``; return the grades."""
    return regrade("phase2", build, GRADED, into)


def main() -> None:
    print_statuses(regenerate())


if __name__ == "__main__":
    main()
