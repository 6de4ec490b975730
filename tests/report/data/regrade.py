"""Shared by the fixtures' make_fixture.py: grade a fixture's inputs in a scratch project with the real grading
code and copy the graded outputs back."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def regrade(phase: str, build: Callable[[Path], None], graded: tuple[str, ...], into: Path) -> dict:
    """``build`` writes the specs and per-seed inputs into a scratch project; its ``graded`` files go to ``into``."""
    from esa.grading.grade import grade_spec
    from esa.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        build(project)
        cwd = os.getcwd()
        os.chdir(project)  # the spec's recorded path is relative, as the grade stage writes it
        try:
            grades, _ = grade_spec(load_spec(f"specs/{phase}.yaml"), Path("."))
        finally:
            os.chdir(cwd)
        into.mkdir(parents=True, exist_ok=True)
        for name in graded:
            shutil.copy(project / "results" / phase / name, into / name)
    return grades


def print_statuses(grades: dict) -> None:
    for cid, c in grades["criteria"].items():
        print(f"{cid:6} {c['status']:12} {c['reason'][:110]}")
