"""`esa export phase5` for a phase-5 spec with a faults and an interpret run: the page's security and
interpretability tables and charts (the phase5b page fixture, laid out as the phase-5 project)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from esa.export.phases import build
from esa.export.writer import write_exhibits
from esa.report import charts_interpret as charts_int
from esa.report import tables_interpret as tables_int
from esa.report import tables_security as tables_sec

FIXTURE = Path(__file__).resolve().parents[1] / "report" / "data" / "phase5b"


def phase5_project(root: Path) -> Path:
    """The fixture as specs/phase5.yaml and results/phase5/ (what `esa export phase5` reads)."""
    (root / "specs").mkdir(parents=True)
    text = (FIXTURE / "specs/phase5b.yaml").read_text(encoding="utf-8")
    (root / "specs/phase5.yaml").write_text(text.replace("name: phase5b", "name: phase5"), encoding="utf-8")
    shutil.copytree(FIXTURE / "results/phase5b", root / "results/phase5")
    return root


def test_faults_and_interpret_runs_export_the_page_frames(tmp_path: Path) -> None:
    root = phase5_project(tmp_path / "p")
    exhibits = build("phase5", root)
    assert [t.name for t in exhibits.tables] == [
        "hypotheses", "criteria", "collapse-bits", "flips-to-collapse-bits", "superweight-effects-inside",
        "head-correlations-inside", "probe-drops-inside"]
    assert [f.name for f in exhibits.figures] == ["collapse-rate-bits", "ppl-per-flip-bits",
                                                  "massive-activation-inside", "heads-inside", "probe-accuracy-inside"]
    tables = {t.name: t.frame for t in exhibits.tables}
    analysis = json.loads((root / "results/phase5/analysis.json").read_text())["runs"]
    pd.testing.assert_frame_equal(tables["collapse-bits"],
                                  tables_sec.collapse_table(tables_sec.collapse_frame(analysis["bits"])))
    assert list(tables["flips-to-collapse-bits"]["flips to collapse (per seed)"]) == ["2 · 3", "5 · >6", ">6 · >6"]
    pd.testing.assert_frame_equal(tables["probe-drops-inside"], tables_int.drop_table(analysis["inside"]))
    figures = {f.name: f.chart.to_dict() for f in exhibits.figures}
    heads = tables_int.head_frame(pd.read_parquet(root / "results/phase5/head_critical.parquet"), "inside")
    assert figures["heads-inside"] == charts_int.head_chart(heads).to_dict()
    written = write_exhibits(exhibits, tmp_path / "out", "markdown", progress=False)
    assert {p.stem for p in written.tables} >= {"collapse-bits", "probe-drops-inside"}
    assert {p.name for p in written.figures} >= {"massive-activation-inside.svg", "ppl-per-flip-bits.png"}
