"""Each phase's exhibits: the report pages' tables and charts, and figures at print resolution."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from esa.export.exhibits import criteria_frame
from esa.export.phases import build
from esa.export.figures import PNG_PPI
from esa.export.writer import write_exhibits
from esa.report import charts, tables
from esa.report.render import clean_svg

DATA = Path(__file__).resolve().parents[1] / "report" / "data"

EXPECTED = {
    "phase1": (["hypotheses", "criteria", "ppl"], ["ppl-per-seed"]),
    "phase2": (["hypotheses", "criteria", "scored", "heavy-tails", "hotspot-tests", "superweight-spikes"],
               ["score-distributions", "stability-vs-k", "metric-agreement-gradient", "metric-agreement-curv",
                "hotspots"]),
    "phase3": (["hypotheses", "criteria", "perturbed", "conditions", "statistics", "statistics-per-seed",
                "dose-response", "repeatability-signflip-signflip2"], ["delta-ppl", "dose-response"]),
    "phase5": (["hypotheses", "criteria", "pruning-pr", "sparsity-pr", "protected-pr", "adaptation-ad"],
               ["ppl-vs-sparsity-pr", "forgetting-gain-ad", "training-loss-ad"]),
}


@pytest.mark.parametrize("phase", sorted(EXPECTED))
def test_tables_and_figures_of_each_phase(latex_exports: dict, phase: str) -> None:
    written = latex_exports[phase]
    names, figures = EXPECTED[phase]
    assert [p.stem for p in written.tables] == names
    assert sorted(p.name for p in written.figures) == sorted(f"{f}.{ext}" for f in figures for ext in ("svg", "png"))


def _png_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, dots per inch) from the IHDR and pHYs chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    at = data.index(b"pHYs")
    ppm_x, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    assert unit == 1  # metres
    return width, height, round(ppm_x * 0.0254)


@pytest.mark.parametrize("phase", sorted(EXPECTED))
def test_png_is_print_resolution_and_svg_well_formed(latex_exports: dict, phase: str) -> None:
    for svg in (p for p in latex_exports[phase].figures if p.suffix == ".svg"):
        root = ET.fromstring(svg.read_text(encoding="utf-8"))
        assert root.tag.endswith("svg")
        svg_width, svg_height = float(root.get("width")), float(root.get("height"))
        width, height, dpi = _png_header(svg.with_suffix(".png").read_bytes())
        assert width >= 3 * svg_width and height >= 3 * svg_height
        assert dpi == PNG_PPI >= 300


def test_figures_are_the_page_charts(tmp_path: Path, make_project) -> None:
    """The exported SVG is what the report page inlines for the same chart (same spec, theme and renderer)."""
    exhibits = build("phase1", make_project("phase1", tmp_path / "p"))
    written = write_exhibits(exhibits, tmp_path / "out", "markdown", progress=False)
    svg = next(p for p in written.figures if p.suffix == ".svg").read_text(encoding="utf-8")
    assert clean_svg(svg) == charts.chart_svg(exhibits.figures[0].chart)
    assert "#0072B2" in svg  # the Okabe-Ito palette of esa.report.charts.setup()


def test_results_tables_are_the_report_frames(tmp_path: Path, make_project) -> None:
    exhibits = build("phase1", make_project("phase1", tmp_path))
    summary = json.loads((DATA / "summary.json").read_text())
    ppl = next(t for t in exhibits.tables if t.name == "ppl")
    pd.testing.assert_frame_equal(ppl.frame, tables.ppl_frame(summary))


def test_criteria_frame_from_grades() -> None:
    grades = json.loads((DATA / "grades.json").read_text())
    frame = criteria_frame(grades)
    assert list(frame.columns) == ["criterion", "hypothesis", "description", "value", "test", "CI", "p", "status"]
    row = frame.set_index("criterion").loc["protocol-ratio"]
    assert (row["hypothesis"], row["test"], row["CI"], row["status"]) == ("H2", "< 1.1", "[1.21, 1.42]", "fail")
    assert tables.fmt(row["value"]) == "1.31" and tables.fmt(row["p"]) == "0.000432"
    assert frame.set_index("criterion").loc["top1-floor", "CI"] == tables.DASH


def test_criteria_amended_after_lock_say_so() -> None:
    grades = {"criteria": {"a": {"status": "pass", "comparator": ">=", "threshold": 5, "description": ""},
                           "b": {"status": "fail", "comparator": "<", "threshold": 2, "description": ""}},
              "lock": {"changes": {"criteria": {"b": "changed"}}}}
    frame = criteria_frame(grades)
    assert "description" not in frame  # no criterion has one
    assert list(frame["lock"]) == ["", "changed after lock"]
    assert list(frame["test"]) == ["≥ 5", "< 2"]  # comparators as a paper writes them


def test_phase5_exhibits_are_the_page_frames_and_cover_adapt_runs(tmp_path: Path, make_project) -> None:
    """The pruning tables are the page's frames; the fixture's adapt run exports the adaptation chart, table and
    loss curves, built from the grade stage's adaptation.parquet and adaptation_curves.parquet."""
    import esa.spec
    from esa.report import charts_phase5 as charts5
    from esa.report import tables_phase5 as tables5

    root = make_project("phase5", tmp_path / "p")
    spec = esa.spec.load_spec(root / "specs/phase5.yaml")
    pruning = pd.read_parquet(root / "results/phase5/pruning.parquet")
    exhibits = build("phase5", root)
    table = next(t for t in exhibits.tables if t.name == "pruning-pr")
    expected = tables5.prune_table(tables5.prune_summary(pruning, "pr"), tables5.named_sparsities(spec.criteria, "pr"))
    pd.testing.assert_frame_equal(table.frame, expected)
    assert "30%, 50%, 70% sparsity" in table.caption

    assert [f.name for f in exhibits.figures] == ["ppl-vs-sparsity-pr", "forgetting-gain-ad", "training-loss-ad"]
    summary = tables5.adapt_summary(pd.read_parquet(root / "results/phase5/adaptation.parquet"), "ad")
    adaptation = next(t for t in exhibits.tables if t.name == "adaptation-ad")
    pd.testing.assert_frame_equal(adaptation.frame, tables5.adapt_table(summary))
    assert list(adaptation.frame["arm"]) == ["full", "frozen", "fisher", "top", "random", "bottom", "lora"]
    assert adaptation.frame.set_index("arm").loc["full", "gain [95% CI]"] == "0.599 [0.581, 0.612]"
    figures = {f.name: f.chart.to_dict() for f in exhibits.figures}
    assert figures["forgetting-gain-ad"] == charts5.adapt_chart(summary).to_dict()
    loss = tables5.loss_frame(pd.read_parquet(root / "results/phase5/adaptation_curves.parquet"), "ad")
    assert figures["training-loss-ad"] == charts5.loss_chart(loss).to_dict() and len(loss) == 7 * 5
    written = write_exhibits(exhibits, tmp_path / "out", "markdown", progress=False)
    assert {p.stem for p in written.tables} >= {"pruning-pr", "adaptation-ad"}
    assert {p.name for p in written.figures} >= {"forgetting-gain-ad.svg", "training-loss-ad.png"}
