"""esa.report.browser: a hand-made site (plus one page rendered by render_qmd) checked in headless Chromium.

One browser run serves all page assertions (the module fixture); the machine is small.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from esa.report import charts
from esa.report.browser import PageCheck, check_site, ink_fraction
from esa.report.browser_cli import check_site_command
from esa.report.render import clean_svg, render_qmd

TEXT = "<h1>Results</h1><p>" + "Perplexity was measured on three seeds per protocol. " * 6 + "</p>"

QMD = """---
title: Tiny
---

Some text before the chart.

```{python}
#| echo: false
import altair as alt, pandas as pd
from IPython.display import HTML, display
from esa.report import charts
charts.setup()
df = pd.DataFrame({"x": ["a", "b", "c"], "y": [3, 1, 2]})
display(HTML('<meta name="esa-charts" content="1">'))
display(alt.Chart(df).mark_bar().encode(x="x:N", y="y:Q").properties(width=200, height=120))
```
"""


def _page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>{head}</head><body>{body}</body></html>"


def _chart_svg() -> str:
    charts.setup()
    df = pd.DataFrame({"protocol": ["a", "a", "b", "b"], "ppl": [41.2, 41.9, 43.0, 42.5]})
    chart = (
        alt.Chart(df)
        .mark_point(filled=True, size=60)
        .encode(x="protocol:N", y=alt.Y("ppl:Q", scale=alt.Scale(zero=False)))
    )
    bundle = chart.properties(width=200, height=150)._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    return clean_svg(bundle["image/svg+xml"])


def _build_site(site: Path, project: Path) -> None:
    site.mkdir(parents=True)
    svg = _chart_svg()
    pages = {
        "chart": _page(TEXT + svg),
        "chart_declared": _page(TEXT + svg + svg, head='<meta name="esa-charts" content="2">'),
        "chart_miscounted": _page(TEXT + svg, head='<meta name="esa-charts" content="2">'),
        "text_only": _page(TEXT),
        "blank": _page(""),
        "empty_svg": _page(TEXT + '<svg class="marks"></svg>'),
        "hidden_chart": _page(TEXT + f'<div style="display:none">{svg}</div>'),
        "external_script": _page(TEXT, head='<script src="http://example.com/vega.js"></script>'),
        "js_error": _page(TEXT + "<script>console.error('boom'); undefinedFunction();</script>"),
    }
    for name, html in pages.items():
        (site / f"{name}.html").write_text(html, encoding="utf-8")
    qmd = project / "reports" / "tiny.qmd"
    qmd.parent.mkdir(parents=True)
    qmd.write_text(QMD, encoding="utf-8")
    render_qmd(qmd, site / "rendered.html", project_root=project, use_quarto=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    _build_site(root / "_site", root / "project")
    return root / "_site"


@pytest.fixture(scope="module")
def checks(site: Path, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageCheck]:
    shots = tmp_path_factory.mktemp("shots")
    results = check_site(site, chromium=chromium, screenshots=shots, min_charts={"text_only": 0, "chart": 1})
    return {Path(r.page).stem: r for r in results}


@pytest.mark.parametrize(
    ("page", "n_charts"),
    [("chart", 1), ("chart_declared", 2), ("text_only", 0), ("rendered", 1)],
)
def test_good_pages_pass(checks: dict[str, PageCheck], page: str, n_charts: int) -> None:
    check = checks[page]
    assert check.ok, check.problems
    assert check.problems == []
    assert check.n_charts == n_charts
    assert check.screenshot is not None and check.screenshot.is_file()


@pytest.mark.parametrize(
    ("page", "needles"),
    [
        ("blank", ["screenshot is blank"]),
        ("empty_svg", ["chart 1: draws no data marks", "chart 1: blank in screenshot"]),
        ("hidden_chart", ["chart 1: not displayed"]),
        ("chart_miscounted", ["1 charts, page declares 2"]),
        ("external_script", ["network request: http://example.com/vega.js"]),
        ("js_error", ["console error: boom", "uncaught JS error: ReferenceError"]),
    ],
)
def test_bad_pages_fail(checks: dict[str, PageCheck], page: str, needles: list[str]) -> None:
    check = checks[page]
    assert not check.ok
    for needle in needles:
        assert any(p.startswith(needle) for p in check.problems), (needle, check.problems)


def test_every_page_checked_and_declared_count_read(checks: dict[str, PageCheck]) -> None:
    assert len(checks) == 10
    assert checks["chart_declared"].expected_charts == 2 and checks["rendered"].expected_charts == 1
    assert checks["text_only"].expected_charts is None
    # The blocked request is one problem, not also a "Failed to load resource" console error.
    assert len(checks["external_script"].problems) == 1


def test_min_charts(site: Path, chromium: str, tmp_path: Path) -> None:
    lone = tmp_path / "site"
    lone.mkdir()
    shutil.copy(site / "text_only.html", lone / "text_only.html")
    [check] = check_site(lone, chromium=chromium, min_charts={"text_only.html": 1})
    assert not check.ok and check.problems == ["0 charts, expected at least 1"]


def test_cli(site: Path, chromium: str, tmp_path: Path) -> None:
    small = tmp_path / "site"
    small.mkdir()
    for name in ("chart.html", "blank.html"):
        shutil.copy(site / name, small / name)
    result = CliRunner().invoke(check_site_command, [str(small), "--screenshots", str(tmp_path / "shots")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("✗ blank.html  charts: 0  — screenshot is blank")
    assert lines[1] == "✓ chart.html  charts: 1"
    assert (tmp_path / "shots" / "chart.png").is_file()


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(check_site_command, [str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "site directory not found" in missing.output
    empty = runner.invoke(check_site_command, [str(tmp_path)])
    assert empty.exit_code == 2 and "no *.html pages" in empty.output
    (tmp_path / "a.html").write_text(_page(TEXT))
    nobrowser = runner.invoke(check_site_command, [str(tmp_path), "--chromium", str(tmp_path / "no-chromium")])
    assert nobrowser.exit_code == 2 and "chromium not found" in nobrowser.output
    assert "Traceback" not in missing.output + empty.output + nobrowser.output


def test_ink_fraction() -> None:
    img = Image.new("RGB", (100, 100), "white")
    assert ink_fraction(img) == 0.0
    img.paste((0, 0, 0), (0, 0, 10, 10))
    assert ink_fraction(img) == pytest.approx(0.01)
    assert ink_fraction(Image.new("RGB", (10, 10), (250, 250, 250))) == 0.0  # uniform, any colour
