"""The whole lab notebook rendered offline from fixture results, then opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from esa.notebook.lock import lock_status, write_lock
from esa.report.browser import check_site
from esa.report.render import external_refs
from esa.report.site import read_config, render_site

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def amend_phase2(project: Path) -> None:
    """Lock the phase-2 spec, move a threshold, and record the lock state in grades.json as grading does."""
    spec = project / "specs/phase2.yaml"
    write_lock(spec, results_dir=project / "results/nothing-yet")
    text = spec.read_text()
    assert "metric: grad_x_weight, k: 20}" in text
    spec.write_text(text.replace("metric: grad_x_weight, k: 20}", "metric: grad_x_weight, k: 20, threshold: 0.123}"))
    grades_path = project / "results/phase2/grades.json"
    grades = json.loads(grades_path.read_text())
    grades["lock"] = lock_status(spec).to_dict()
    grades_path.write_text(json.dumps(grades))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("notebook")
    shutil.copytree(DATA / "phase2", project, dirs_exist_ok=True)
    shutil.copytree(DATA / "phase3", project, dirs_exist_ok=True)
    shutil.copytree(DATA / "phase4", project, dirs_exist_ok=True)
    shutil.copytree(DATA / "phase5", project, dirs_exist_ok=True)
    (project / "results/phase1").mkdir(parents=True)
    for name in ("grades.json", "summary.json"):
        shutil.copy(DATA / name, project / "results/phase1" / name)
    shutil.copytree(REPO / "reports", project / "reports", ignore=shutil.ignore_patterns("_site", ".render"))
    amend_phase2(project)
    render_site(project / "reports", project, use_quarto=False)
    return project / "reports" / "_site"


def test_every_configured_page_is_rendered_offline_with_navigation(site: Path) -> None:
    config = read_config(REPO / "reports")
    assert sorted(p.name for p in site.glob("*.html")) == sorted(f"{Path(p).stem}.html" for p in config.pages)
    for page in site.glob("*.html"):
        text = page.read_text()
        assert external_refs(text) == [], page.name
        assert '<nav class="site-nav">' in text
        assert re.search(rf'<a href="{page.name}" class="active"', text), page.name


def test_index_is_the_lab_notebook(site: Path) -> None:
    text = (site / "index.html").read_text()
    for section in ("Phases", "Research log", "Experiments", "Run manifests"):
        assert f">{section}</h2>" in text or f">{section}</a>" in text
    # No git history in the fixture: the notebook says so and lists the workspace's graded runs.
    assert "no experiment history" in text
    for phase in ("phase1", "phase2", "phase3"):
        assert f'<a href="{phase}.html">{phase}</a>' in text
    assert "dvc repro grade.phase3" in text and "first recorded run of this spec" in text


def test_amended_criterion_shows_its_diff(site: Path) -> None:
    text = (site / "phase2.html").read_text()
    assert "amended after lock" in text
    assert '<span class="add">+  threshold: 0.123</span>' in text
    assert 'changed after lock</small>' in text  # the criteria table flags the amended row
    phase1 = (site / "phase1.html").read_text()
    assert "Unknown: graded before locks existed" in phase1  # the fixture grades predate locks
    assert "Spec and params used" in phase1


def test_every_page_passes_the_chromium_check(site: Path, chromium: str, tmp_path: Path) -> None:
    checks = check_site(site, chromium=chromium, screenshots=tmp_path)
    assert {c.page for c in checks} == {p.name for p in site.glob("*.html")}
    for check in checks:
        assert check.ok, (check.page, check.problems)
        assert check.expected_charts == check.n_charts
    charts = {c.page: c.n_charts for c in checks}
    assert charts["phase1.html"] == 1 and charts["phase2.html"] >= 4 and charts["phase3.html"] >= 2
    assert charts["phase4.html"] == 4  # scaling panels, residuals, group shares, depth profile
    assert charts["phase5.html"] == 3  # PPL against sparsity; gain against forgetting and training loss
    assert charts["index.html"] >= 1
