"""reports/phase4.qmd rendered offline against the results of a tiny Phase-4 project (four random-init local
checkpoints, an MoE and a tuned sibling: tests/kinds), and the tables behind it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from esa.report import tables_phase4 as t4
from esa.report.render import external_refs

FIXTURE = Path(__file__).parent / "data" / "phase4"  # specs/phase4.yaml and results/phase4/
ANALYSIS = json.loads((FIXTURE / "results/phase4/analysis.json").read_text())
SCALING = pd.read_parquet(FIXTURE / "results/phase4/scaling.parquet")


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory, render_page) -> str:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return render_page(project, "phase4")


def test_criteria_statuses_sections_and_charts(html: str) -> None:
    grades = json.loads((FIXTURE / "results/phase4/grades.json").read_text())
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    for cid, criterion in grades["criteria"].items():
        row = next(r for r in rows if f"<code>{cid}</code>" in r)
        assert f'class="badge badge-{criterion["status"]}"' in row
    for section in ("The ladder", "Scaling laws", "Residuals and model choice", "Architecture comparison",
                    "Spec and params used"):
        assert section in html
    assert html.count("<svg") >= 4  # scaling panels, residuals, group shares, depth profile
    assert "Traceback" not in html and "No results yet." not in html
    assert external_refs(html) == []


def test_a_quantity_without_a_fit_says_why(html: str) -> None:
    error = ANALYSIS["runs"]["lad"]["quantities"]["delta_ppl_ratio"]["error"]
    assert "finite positive values" in error  # random-init models: the control's ΔPPL is sometimes negative
    assert error.split(",")[0] in html


def test_ladder_table_means_are_the_seed_means_of_the_table():
    frame = t4.ladder_frame(SCALING, "lad").set_index("model")
    values = SCALING[(SCALING["model"] == "./ladder/m2") & (SCALING["quantity"] == "critical_fraction")]["value"]
    assert frame.loc["m2", "critical_fraction"].startswith(f"{values.mean():.3g}")
    assert list(frame.index) == ["m1", "m2", "m3", "m4"]  # by N


def test_fits_table_has_a_row_per_quantity_and_the_power_law_alpha():
    frame = t4.fits_frame(ANALYSIS["runs"]["lad"]).set_index("quantity")
    alpha = ANALYSIS["runs"]["lad"]["quantities"]["critical_fraction"]["power_law"]["alpha"]
    assert frame.loc["critical_fraction", "α [95% CI]"].startswith(f"{alpha:.3g}")
    assert frame.loc["delta_ppl_ratio", "α [95% CI]"] == "—" and "finite positive" in frame.loc["delta_ppl_ratio", "note"]


def test_missing_results_show_a_notice(tmp_path: Path, render_page) -> None:
    shutil.copytree(FIXTURE / "specs", tmp_path / "specs")
    html = render_page(tmp_path, "phase4")
    assert "No results yet." in html and "Traceback" not in html
