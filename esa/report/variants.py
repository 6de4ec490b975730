"""Variant pages: a graded spec not named phase<N> (real-phase1, pythia-phase2) gets its own page, rendered from
its phase's page with the Quarto parameter SPEC set to its name."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from esa.report.render import ReportError

PHASE_PAGE = re.compile(r"phase[0-9]+")


@dataclass(frozen=True)
class Variant:
    name: str  # the spec's name: results/<name>/, <name>.html
    page: str  # the .qmd of its phase, e.g. phase2.qmd

    @property
    def qmd(self) -> str:
        """The page name the site's navigation knows the variant by."""
        return f"{self.name}.qmd"

    @property
    def params(self) -> dict[str, str]:
        return {"SPEC": self.name}


def _phase(grades_path: Path, root: Path) -> int:
    """The phase a graded spec belongs to: grades.json records it; older files name the spec, which does."""
    try:
        grades = json.loads(grades_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{grades_path}: unreadable grades ({exc})") from None
    phase = grades.get("phase") if isinstance(grades, dict) else None
    if isinstance(phase, int):
        return phase
    spec = grades.get("spec") if isinstance(grades, dict) else None
    if isinstance(spec, str) and (root / spec).is_file():
        from esa.spec import SpecErrors, load_spec

        try:
            return load_spec(root / spec).phase
        except SpecErrors:
            pass  # an invalid spec cannot say: fall through to the error below
    raise ReportError(f"{grades_path}: names no phase and no readable spec; grade the spec again")


def find_variants(project_root: Path, pages: list[str]) -> list[Variant]:
    """Every results/<name>/grades.json whose name is not phase<N> and whose phase has a page in ``pages``."""
    root = Path(project_root)
    variants = []
    for path in sorted((root / "results").glob("*/grades.json")):
        name = path.parent.name
        if PHASE_PAGE.fullmatch(name):
            continue  # the phase's own page shows it
        page = f"phase{_phase(path, root)}.qmd"
        if page not in pages:
            continue  # no page to render it with
        if f"{name}.qmd" in pages:
            raise ReportError(f"{path}: spec name '{name}' is also a page of the site; give the spec another name")
        variants.append(Variant(name, page))
    return variants

