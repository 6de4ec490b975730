"""reports/phase5.qmd rendered offline for a spec with only a faults and an interpret run (tests/report/data/phase5b:
constructed per-seed files graded by the real grade stage; see its make_fixture.py), and the security and
interpretability tables and charts behind it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from esa.report.browser import check_site
from esa.report.render import external_refs
from esa.spec import load_spec

FIXTURE = Path(__file__).parent / "data" / "phase5b"  # specs/phase5b.yaml and results/phase5b/
RESULTS = FIXTURE / "results/phase5b"
SPEC = load_spec(FIXTURE / "specs/phase5b.yaml")
ANALYSIS = json.loads((RESULTS / "analysis.json").read_text())["runs"]
GRADES = json.loads((RESULTS / "grades.json").read_text())
SECURITY = "security-bit-errors-and-a-bit-flip-attack"
INTERPRET = "interpretability-super-weights-attention-heads-and-probes"


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory, render_page) -> str:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return render_page(project, "phase5", "phase5b")


def section(html: str, anchor: str) -> str:
    start = html.index(f'<h2 id="{anchor}"')
    return html[start:html.index("<h2", start + 1)]


def rows(part: str) -> list[list[str]]:
    """The body rows of the tables in ``part``, as lists of cell texts."""
    return [re.findall(r"<td>(.*?)</td>", r, flags=re.S) for r in re.findall(r"<tr>.*?</tr>", part, flags=re.S)
            if "<td>" in r]


def text(part: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", part, flags=re.S)))


def test_page_of_a_spec_with_only_faults_and_interpret_runs(html: str) -> None:
    assert "Results of the spec <strong>phase5b</strong>" in html
    assert {c["status"] for c in GRADES["criteria"].values()} == {"pass", "fail", "inconclusive"}
    table_rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    for cid, criterion in GRADES["criteria"].items():
        row = next(r for r in table_rows if f"<code>{cid}</code>" in r)
        assert f'class="badge badge-{criterion["status"]}"' in row
    heads = re.findall(r'<h2 id="([^"]+)"', html)
    assert heads == ["hypotheses-and-verdict", "pre-registration", "criteria", SECURITY, INTERPRET,
                     "spec-and-params-used"]  # no pruning or adaptation section for a spec without those runs
    assert "nothing below to show" not in html
    # collapse rates and the attack; the activation ratio, the heads and the probes
    assert html.count("<svg") == 5 and html.count('name="esa-charts"') == 5
    assert section(html, SECURITY).count("<svg") == 2 and section(html, INTERPRET).count("<svg") == 3
    assert "Traceback" not in html and "No results yet." not in html
    assert external_refs(html) == []


def test_security_section_shows_the_pooled_collapse_counts_and_the_flips(html: str) -> None:
    part = section(html, SECURITY)
    assert "2 seeds × 10 independent draws" in text(part) and "(fp32 20, int8 20.5)" in text(part)
    table = rows(part)
    # int8 at 1e-4, per seed 6 / 1 / 5 of 10 collapsed (make_fixture.COLLAPSED), both seeds pooled; Wilson 95% CIs
    assert ["int8", "1e-4", "80", "12/20 (60.0% [38.7%, 78.1%])", "2/20 (10.0% [2.8%, 30.1%])",
            "10/20 (50.0% [29.9%, 70.1%])"] in table
    assert ["fp32", "1e-6", "3", "0/20 (0.0% [0.0%, 16.1%])", "0/20 (0.0% [0.0%, 16.1%])",
            "0/20 (0.0% [0.0%, 16.1%])"] in table
    header = re.findall(r"<th>(.*?)</th>", part)
    assert header[:6] == ["format", "rate", "mean flips", "nothing exempt", "critical set exempt",
                          "matched random set exempt"]
    attack = [r[:3] for r in table if len(r) == 4]
    assert attack == [["int8", "attack", "2 · 3"], ["int8", "attack off the critical set", "5 · &gt;6"],
                      ["int8", "random flips", "&gt;6 · &gt;6"]]


def test_interpret_section_shows_the_superweight_heads_and_probes(html: str) -> None:
    part = section(html, INTERPRET)
    words = text(part)
    assert ("found 1 super weight: layers.1.mlp.down_proj (7, 3) in layer 1. Detector: 1 found: layer 1 (7, 3);"
            in words) and "threshold 50" in words
    table = rows(part)
    for entry in ANALYSIS["inside"]["superweights"]:
        row = next(r for r in table if r[:2] == ["layers.1.mlp.down_proj (7, 3)", str(entry["seed"])])
        assert row[3] == f"{entry['ppl_ratio']:.3g} [{entry['ppl_ci_low']:.3g}, {entry['ppl_ci_high']:.3g}]"
        assert row[5] == f"{entry['sink_shift']:.3g} [{entry['sink_ci_low']:.3g}, {entry['sink_ci_high']:.3g}]"
        assert row[6:] == ["layers 2–3", "12 (6)"]
    assert next(r for r in table if r[1] == "1")[3] == "1.64 [1.63, 1.66]"  # ≈ e^0.5, the constructed shift
    assert "ρ = 0.919 [0.863, 0.964] (seed 1), 0.874 [0.593, 0.983] (seed 2)" in words  # sink share
    assert ["sink share (attention on the first token)", "total", "2", "0.874 [0.593, 0.983]", "16", "4"] in table
    assert ["keyword", "accuracy", "1", "10", "0.9", "0.3", "0.8", "0.5 [0.267, 0.733]"] in table
    assert ["builtin", "accuracy", "2", "10", "0.8", "0.7", "0.7", "0 [-0.4, 0.433]"] in table  # an exact 0, not -4.44e-17
    assert ["stdlib", "accuracy", "1", "8", "0.75", "0.25", "0.625", "0.375 [0.125, 0.625]"] in table


def test_chromium_check_of_the_page(html: str, chromium: str, tmp_path: Path) -> None:
    (tmp_path / "phase5b.html").write_text(html, encoding="utf-8")
    [check] = check_site(tmp_path, chromium=chromium)
    assert check.ok, check.problems
    assert check.n_charts == check.expected_charts == 5


def test_missing_results_show_a_notice_per_section(tmp_path: Path, render_page) -> None:
    shutil.copytree(FIXTURE / "specs", tmp_path / "specs")
    html = render_page(tmp_path, "phase5", "phase5b")
    assert "Traceback" not in html and "<svg" not in html
    assert "No results yet." in section(html, "hypotheses-and-verdict")
    for anchor in (SECURITY, INTERPRET):  # each run kind says what is missing instead of drawing
        assert "No results yet." in section(html, anchor) and "results/phase5b/analysis.json" in section(html, anchor)


# --- The fixture: the grade stage's measures of the constructed numbers ---------------------------------------


def test_analysis_reflects_the_constructed_files() -> None:
    cells = {(e["format"], e["rate"], e["arm"]): e for e in ANALYSIS["bits"]["collapse"]}
    assert (cells[("int8", 1e-4, "none")]["collapsed"], cells[("int8", 1e-4, "none")]["diverged"]) == (12, 2)
    assert cells[("fp32", 1e-4, "critical")]["collapsed"] == 8 and len(cells) == 2 * 3 * 3
    flips = {(e["arm"], e["seed"]): (e["flips_to_collapse"], e["censored"]) for e in ANALYSIS["bits"]["attacks"]}
    assert flips == {("unrestricted", 1): (2, False), ("unrestricted", 2): (3, False),
                     ("noncritical", 1): (5, False), ("noncritical", 2): (None, True),
                     ("random", 1): (None, True), ("random", 2): (None, True)}
    inside = ANALYSIS["inside"]
    for entry in inside["superweights"]:
        assert entry["ppl_ratio"] == pytest.approx(math.exp(0.5), abs=0.03)
        assert entry["sink_shift"] == pytest.approx(-0.25, abs=0.02) and entry["sink_layers"] == [2, 3]
    drops = {(e["category"], e["seed"]): e["drop"] for e in inside["probe_drops"] if e["measure"] == "accuracy"}
    assert drops[("keyword", 1)] == 0.5 and drops[("stdlib", 2)] == 0.375
    assert drops[("builtin", 2)] == pytest.approx(0, abs=1e-12)
    rho = {(e["stat"], e["seed"]): e["rho"] for e in inside["head_correlations"]}
    assert rho[("sink_share", 1)] > 0.8 and rho[("entropy", 1)] < -0.9
    assert GRADES["criteria"]["heads-entropy"]["status"] == "fail"  # rho < 0 on the whole CI, graded as > 0
    assert GRADES["criteria"]["probe-builtin"]["status"] == "inconclusive"
    assert [r.kind for r in SPEC.runs] == ["faults", "interpret"]
    assert len(pd.read_parquet(RESULTS / "superweights.parquet")) == 2 * 2 * 4  # seeds × conditions × layers
