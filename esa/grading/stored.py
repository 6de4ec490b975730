"""Reading the grades the `grade.<name>` stage wrote, for `esa grade`, which only displays them.

grades.json is a DVC output: anything but the stage writing it would leave `dvc status` dirty.
"""

from __future__ import annotations

import json
from pathlib import Path

from esa.notebook.lock import lock_status
from esa.spec import Spec


class StoredGradesError(ValueError):
    """grades.json is missing or unreadable (one line for the user)."""


def grades_path(spec: Spec, root: Path) -> Path:
    return root / "results" / spec.name / "grades.json"


def regrade_hint(spec: Spec) -> str:
    return f"run `dvc repro grade.{spec.name}` to regrade"


def read_grades(spec: Spec, root: Path) -> dict:
    path = grades_path(spec, root)
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    if not path.is_file():
        raise StoredGradesError(f"{shown}: not graded yet; {regrade_hint(spec)}")
    try:
        grades = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StoredGradesError(f"{shown}:{exc.lineno}: not valid JSON ({exc.msg}); {regrade_hint(spec)}") from None
    if not isinstance(grades, dict) or not isinstance(grades.get("criteria"), dict):
        raise StoredGradesError(f"{shown}: no 'criteria' mapping; {regrade_hint(spec)}")
    return grades


def stale_reasons(spec: Spec, grades: dict, root: Path) -> list[str]:
    """Why the stored grades may no longer match the spec: it was edited, or its lock changed, since grading."""
    reasons = []
    if grades.get("spec_sha256") != spec.sha256:
        reasons.append(f"{spec.source} changed since it was graded")
    graded_lock = (grades.get("lock") or {}).get("state")
    current_lock = lock_status(root / spec.source).state
    if graded_lock != current_lock:
        reasons.append(f"pre-registration is now '{current_lock}' (graded as '{graded_lock}')")
    return reasons
