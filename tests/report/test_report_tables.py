"""Tables and charts built from grades.json and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import pandas as pd
import pytest

from esa.report import charts, tables

DATA = Path(__file__).parent / "data"


@pytest.fixture()
def grades() -> dict:
    return json.loads((DATA / "grades.json").read_text())


@pytest.fixture()
def summary() -> dict:
    return json.loads((DATA / "summary.json").read_text())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (float("nan"), "—"),
        ("nan", "—"),  # how results JSON stores non-finite floats
        ("inf", "∞"),
        (0.0123456, "0.0123"),
        (41.8233, "41.8"),
        (65536, "65,536"),
        (4096.0, "4,096"),
        (1.5e-7, "1.5e-07"),
        ("n/a", "n/a"),
    ],
)
def test_fmt(value: object, text: str) -> None:
    assert tables.fmt(value) == text


def test_grade_table_badge_per_status(grades: dict) -> None:
    rows = tables.grade_table(grades).split("<tr>")[2:]  # skip the header row
    by_id = {cid: row for cid in grades["criteria"] for row in rows if f"<code>{cid}</code>" in row}
    for cid, criterion in grades["criteria"].items():
        assert f'class="badge badge-{criterion["status"]}"' in by_id[cid]
    assert "[1.21, 1.42]" in by_id["protocol-ratio"] and "0.000432" in by_id["protocol-ratio"]
    assert 'href="results/phase1/summary.json"' in by_id["ppl-seed-cv"]
    assert by_id["top1-floor"].count("—") >= 3  # value, CI, p, evidence missing


def test_grade_table_escapes_and_links(grades: dict) -> None:
    grades["criteria"]["ppl-seed-cv"]["description"] = "a <b> & c"
    html = tables.grade_table(grades, link_root="../..")
    assert "a &lt;b&gt; &amp; c" in html
    assert 'href="../../results/phase1/summary.json"' in html


def test_status_line_counts(grades: dict) -> None:
    line = tables.status_line(grades)
    assert "3 criteria" in line and line.count("badge-") == 3


@pytest.mark.parametrize(
    "spec",
    [
        {"H1": "stable"},
        {"hypotheses": {"H1": "stable"}},
        {"hypotheses": [{"id": "H1", "statement": "stable"}]},
        {"hypotheses": {"H1": {"statement": "stable"}}},
    ],
)
def test_hypotheses_list_shapes(spec: dict) -> None:
    assert "<strong>H1</strong> — stable" in tables.hypotheses_list(spec)


def test_df_to_html_formats_numbers() -> None:
    html = tables.df_to_html(pd.DataFrame({"x": [1.23456, None], "n": [1000, 2]}))
    assert 'class="dataframe esa-table"' in html and "1.23" in html and "1,000" in html and "—" in html


def test_ppl_frame(summary: dict) -> None:
    df = tables.ppl_frame(summary)
    assert list(df["PPL (mean ± std)"]) == ["41.8 ± 0.279", "54.9 ± 0.7"]
    assert list(df["CV %"]) == ["0.667", "1.27"]
    assert list(df["status"]) == ["3/3 ok", "2/3 ok"]


def test_ppl_frame_tolerates_missing_and_non_finite() -> None:
    run = {
        "run": "smoke-ref-s", "model": "ref-s", "protocol": "smoke", "seeds": [1, 2], "missing": ["x/metrics.json"],
        "ppl": [12.5, "nan"], "ppl_mean": "nan", "ppl_std": "nan", "ppl_cv": "nan", "bits_per_byte": [1.0, "nan"],
        "top1_accuracy": [0.3, 0.31], "n_tokens": [2048.0, 2048.0], "vocab_size": 4096.0, "status": ["ok", "nan_loss"],
    }
    row = tables.ppl_frame({"runs": [run]}).iloc[0]
    assert row["PPL (mean ± std)"] == "— ± —" and row["CV %"] == "—"
    assert (row["bits/byte"], row["tokens"], row["vocab"], row["status"]) == ("1", "2,048", "4,096", "1/3 ok")
    assert len(charts.seeds_frame({"runs": [run]})) == 1


def test_chart_renders_svg(summary: dict) -> None:
    charts.setup()
    assert alt.renderers.active == "svg" and alt.theme.active == charts.THEME_NAME
    bundle = charts.per_seed_chart(summary)._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert bundle["image/svg+xml"].lstrip().startswith("<svg")
    assert set(charts.status_colors()) == {"pass", "fail", "inconclusive"}


def test_chart_axis_scale(summary: dict) -> None:
    assert charts.per_seed_chart(summary).to_dict()["layer"][0]["encoding"]["y"]["scale"] == {"zero": False}
    summary["runs"][1]["ppl"] = [900.0, 950.0, 1000.0]
    assert charts.per_seed_chart(summary).to_dict()["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
