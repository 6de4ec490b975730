"""Regenerate this fixture's graded outputs (analysis.json, stability_vs_k.parquet, grades.json) from its committed
per-seed scoring outputs, with the real grading code.

    .venv/bin/python tests/report/data/phase2/make_fixture.py

The per-seed inputs under results/phase2/<run>/seed<n>/ (topk.parquet, tensor_stats.parquet, summary.json,
sampling.json, ...) come from a real scoring run of the tiny model and are never rewritten here; only what
`python stages/grade.py specs/phase2.yaml` writes from them is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASE = "phase2"
GRADED = ("analysis.json", "stability_vs_k.parquet", "grades.json")


def build(project: Path) -> None:
    """The specs and every run's per-seed inputs, without the graded outputs."""
    shutil.copytree(HERE / "specs", project / "specs")
    for run in (p for p in (HERE / "results" / PHASE).iterdir() if p.is_dir()):
        shutil.copytree(run, project / "results" / PHASE / run.name)


def regenerate(into: Path = HERE / "results" / PHASE) -> dict:
    """Grade the fixture in a scratch project and copy its graded outputs into ``into``; return the grades."""
    from esa.grading.grade import grade_spec
    from esa.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        build(project)
        cwd = os.getcwd()
        os.chdir(project)  # the spec's recorded path is relative, as `python stages/grade.py specs/phase2.yaml` writes it
        try:
            grades, _ = grade_spec(load_spec(f"specs/{PHASE}.yaml"), Path("."))
        finally:
            os.chdir(cwd)
        into.mkdir(parents=True, exist_ok=True)
        for name in GRADED:
            shutil.copy(project / "results" / PHASE / name, into / name)
    return grades


def main() -> None:
    grades = regenerate()
    for cid, c in grades["criteria"].items():
        print(f"{cid:6} {c['status']:12} {c['reason'][:110]}")


if __name__ == "__main__":
    main()
