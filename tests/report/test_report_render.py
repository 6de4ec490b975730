"""Offline rendering of reports/phase1.qmd (jupytext + nbclient + pandoc), forced even where Quarto exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from esa.report.render import ReportError, clean_svg, external_refs, render_qmd, strip_namespaces

REPO = Path(__file__).resolve().parents[2]
PHASE1 = REPO / "reports" / "phase1.qmd"
DATA = Path(__file__).parent / "data"


def _render(project: Path, qmd: Path = PHASE1) -> str:
    out = render_qmd(qmd, project / "reports" / "_site" / f"{qmd.stem}.html", project_root=project, use_quarto=False)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> str:
    project = tmp_path_factory.mktemp("project")
    (project / "results" / "phase1").mkdir(parents=True)
    for name in ("grades.json", "summary.json"):
        shutil.copy(DATA / name, project / "results" / "phase1" / name)
    return _render(project)


def test_grade_table_values(html: str) -> None:
    for text in ("ppl-seed-cv", "protocol-ratio", "top1-floor", "0.0123", "[1.21, 1.42]", "0.000432"):
        assert text in html
    for status in ("pass", "fail", "inconclusive"):
        assert f'class="badge badge-{status}"' in html
    # Evidence links are relative: from reports/_site/ back to the project root.
    assert 'href="../../results/phase1/strided-ref-s/metrics.json"' in html


def test_ppl_table_and_chart(html: str) -> None:
    assert "41.8 ± 0.279" in html and "65,530–65,536" in html and "2/3 ok" in html
    assert "<svg" in html
    assert "Phase 1 — baseline evaluation" in html
    assert "How this was measured" in html


def test_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html
    assert external_refs(html) == []


def test_missing_results_shows_message(tmp_path: Path) -> None:
    html = _render(tmp_path)
    assert "No results yet." in html
    assert "results/phase1/grades.json" in html
    assert "Traceback" not in html


def test_failing_cell_is_named(tmp_path: Path) -> None:
    qmd = tmp_path / "bad.qmd"
    qmd.write_text('---\ntitle: Bad\n---\n\n```{python}\nx = 1\n```\n\n```{python}\nundefined_name\n```\n')
    with pytest.raises(ReportError, match=r"bad\.qmd:9: code cell 2 of 2 failed: NameError"):
        _render(tmp_path, qmd)


def test_clean_svg_and_external_refs() -> None:
    svg = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/x.dtd">'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="1">'
        "<metadata><rdf:RDF>http://purl.org</rdf:RDF></metadata><rect/></svg>"
    )
    assert clean_svg(svg) == '<svg width="1"><rect/></svg>'
    data_uri = """<style>i { background: url("data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg'%3e"); }</style>"""
    assert strip_namespaces(data_uri) == data_uri  # a standalone SVG document needs its namespace
    assert external_refs('<script src="https://cdn.x/vega.js"></script>')
    assert external_refs("<style>@import 'x.css';</style>")
    assert external_refs('<a href="//example.org">x</a>')
    assert not external_refs('<img src="data:image/png;base64,AAAA"><a href="../results/x.json">x</a>')
