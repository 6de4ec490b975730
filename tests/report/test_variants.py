"""Variant pages: every graded spec not named phase<N> gets its phase's page, rendered with SPEC set to its name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from esa.cli import main
from esa.report.render import ReportError, render_qmd
from esa.report.site import nav_bar, read_config, render_site, with_variants
from esa.report.variants import Variant, find_variants

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
PAGES = ["index.qmd", "phase1.qmd", "phase2.qmd"]
PHASE2_SPEC = "phase: 2\nname: zoo\ntitle: t\nhypotheses: [{id: H1, statement: s}]\n"


def grade(root: Path, name: str, **grades) -> None:
    path = root / "results" / name / "grades.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"title": f"{name} title", "criteria": {}, **grades}))


def test_variants_are_the_graded_specs_not_named_after_a_phase(tmp_path: Path) -> None:
    grade(tmp_path, "phase1", phase=1)  # shown by phase1.qmd itself
    grade(tmp_path, "real-phase1", phase=1)
    (tmp_path / "specs/hub").mkdir(parents=True)
    (tmp_path / "specs/hub/zoo.yaml").write_text(PHASE2_SPEC)
    grade(tmp_path, "zoo", spec="specs/hub/zoo.yaml")  # no phase recorded: the spec it names says 2
    grade(tmp_path, "later", phase=4)  # no page for phase 4
    (tmp_path / "results/baselines/x").mkdir(parents=True)  # shared evaluations, never graded
    assert find_variants(tmp_path, PAGES) == [Variant("real-phase1", "phase1.qmd"), Variant("zoo", "phase2.qmd")]
    assert Variant("zoo", "phase2.qmd").params == {"SPEC": "zoo"}


def test_a_variant_named_like_a_page_or_without_a_phase_is_refused(tmp_path: Path) -> None:
    grade(tmp_path, "index", phase=1)
    with pytest.raises(ReportError, match="spec name 'index' is also a page of the site"):
        find_variants(tmp_path, PAGES)
    shutil.rmtree(tmp_path / "results/index")
    grade(tmp_path, "orphan", spec="specs/gone.yaml")
    with pytest.raises(ReportError, match="orphan/grades.json: names no phase and no readable spec"):
        find_variants(tmp_path, PAGES)


def test_variants_join_the_navigation(tmp_path: Path) -> None:
    grade(tmp_path, "real-phase1", phase=1)
    config, variants = with_variants(read_config(REPO / "reports"), tmp_path)
    assert variants == [Variant("real-phase1", "phase1.qmd")]
    assert config.nav[-1] == ("real-phase1.qmd", "real-phase1")
    bar = nav_bar(config, "real-phase1.qmd")
    assert '<a href="real-phase1.html" class="active" aria-current="page">real-phase1</a>' in bar
    assert '<a href="phase1.html">' in bar


TINY_PAGE = """---
title: Phase 1
---

```{python}
#| tags: [parameters]
SPEC = "phase1"
```

```{python}
#| echo: false
print(f"results of {SPEC}")
```
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site of two tiny pages and a graded phase-1 spec named real-phase1."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "_quarto.yml").write_text("project:\n  type: website\n  output-dir: _site\n"
                                         "  render: [index.qmd, phase1.qmd]\n")
    (reports / "index.qmd").write_text("---\ntitle: Notebook\n---\n\nThe index.\n")
    (reports / "phase1.qmd").write_text(TINY_PAGE)
    grade(tmp_path, "real-phase1", phase=1, counts={"pass": 0, "fail": 0, "inconclusive": 0})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_site_renders_a_page_per_variant(project: Path) -> None:
    pages = render_site(project / "reports", project, use_quarto=False)
    assert [p.name for p in pages] == ["index.html", "phase1.html", "real-phase1.html"]
    variant = (project / "reports/_site/real-phase1.html").read_text()
    assert "results of real-phase1" in variant
    assert '<a href="real-phase1.html" class="active"' in variant
    phase1 = (project / "reports/_site/phase1.html").read_text()
    assert "results of phase1" in phase1 and '<a href="real-phase1.html">real-phase1</a>' in phase1


def test_esa_report_renders_one_variant_by_name(project: Path) -> None:
    result = CliRunner().invoke(main, ["report", "real-phase1", "--no-quarto"])
    assert result.exit_code == 0, result.output
    assert "real-phase1 title" in result.stdout  # its grades table is printed, as for a phase page
    assert "results of real-phase1" in (project / "reports/_site/real-phase1.html").read_text()
    result = CliRunner().invoke(main, ["report", "nope", "--no-quarto"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: reports/nope.qmd: no such report page (spec variants: real-phase1)"


def test_the_phase1_page_shows_a_variant_spec(tmp_path: Path) -> None:
    (tmp_path / "results/real-phase1").mkdir(parents=True)
    for name in ("grades.json", "summary.json"):
        shutil.copy(DATA / name, tmp_path / "results/real-phase1" / name)
    out = render_qmd(REPO / "reports/phase1.qmd", tmp_path / "reports/_site/real-phase1.html", project_root=tmp_path,
                     use_quarto=False, params={"SPEC": "real-phase1"})
    html = out.read_text(encoding="utf-8")
    assert "Results of the spec <strong>real-phase1</strong>" in html
    assert "results/real-phase1/" in html and "41.8 ± 0.279" in html  # its own summary.json
    assert "Traceback" not in html
