"""Phase-1 exhibits: perplexity by model and protocol, and perplexity per seed (as reports/phase1.qmd shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import altair as alt

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts, tables

PPL_NOTE = "Mean ± standard deviation across seeds; CV = std / mean; bits/byte, top-1 accuracy: mean across seeds."
SEED_NOTE = "Each point is one seed; the horizontal tick marks the mean across seeds."


def per_seed(summary: Mapping[str, Any] | None) -> alt.LayerChart | None:
    """The per-seed perplexity chart, or None when no seed has a finite perplexity."""
    if summary and charts.seeds_frame(summary).shape[0]:
        return charts.per_seed_chart(summary)
    return None


def build(root: Path) -> Exhibits:
    hint = rerun_hint("phase1")
    grades = read_json(require(root, "results/phase1/grades.json", hint))
    summary = read_json(require(root, "results/phase1/summary.json", hint))
    out = Exhibits("phase1")
    add_grades(out, grades)
    out.table("ppl", f"Phase 1: perplexity by model and protocol. {PPL_NOTE}", tables.ppl_frame(summary))
    out.figure("ppl-per-seed", f"Phase 1: perplexity per seed. {SEED_NOTE}", per_seed(summary))
    return out
