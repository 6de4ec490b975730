"""Which exhibits each phase exports: phase name → builder (the phase modules build on esa.export.exhibits)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from esa.export import exhibits_phase1, exhibits_phase2, exhibits_phase3, exhibits_phase4, exhibits_phase5
from esa.export.exhibits import Exhibits, phase_name

BUILDERS: dict[str, Callable[[Path], Exhibits]] = {
    "phase1": exhibits_phase1.build, "phase2": exhibits_phase2.build, "phase3": exhibits_phase3.build,
    "phase4": exhibits_phase4.build, "phase5": exhibits_phase5.build}


def build(phase: str, root: Path) -> Exhibits:
    """Every exhibit of ``phase`` from the results under ``root``; ExportError when a required file is missing."""
    from esa.report import charts

    charts.setup()  # the reports' colour-blind-safe theme, applied when the charts are serialised
    return BUILDERS[phase_name(phase)](Path(root))
