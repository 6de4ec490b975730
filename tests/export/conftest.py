"""Tiny real projects for `esa export`: the report pages' fixtures laid out as project roots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "report" / "data"


def make_project(phase: str, root: Path) -> Path:
    """A project root with results/<phase>/ (and specs/ for phases 2 to 5) copied from tests/report/data."""
    if phase == "phase1":
        (root / "results" / "phase1").mkdir(parents=True)
        for name in ("grades.json", "summary.json"):
            shutil.copy(DATA / name, root / "results" / "phase1" / name)
    else:
        shutil.copytree(DATA / phase, root, dirs_exist_ok=True)
    return root


@pytest.fixture(name="make_project")
def make_project_fixture():
    return make_project


@pytest.fixture(scope="session")
def latex_exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every phase exported once as LaTeX (figures included): phase → esa.export.writer.Written."""
    from esa.export.writer import export_phase

    out = {}
    for phase in ("phase1", "phase2", "phase3", "phase4", "phase5"):
        root = make_project(phase, tmp_path_factory.mktemp(phase))
        out[phase] = export_phase(phase, "latex", root=root, progress=False)
    return out
