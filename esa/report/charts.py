"""Altair set-up and chart builders for the reports.

Charts render to inline SVG through vl-convert, so a report never needs a CDN script and
looks the same whether Quarto or the offline fallback renders it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
_STATUS_COLORS: dict[str, str] = {
    "pass": "#009E73",
    "fail": "#D55E00",
    "inconclusive": "#999999",
}
THEME_NAME = "esa"
CHART_META = "esa-charts"  # one <meta name="esa-charts" content="1"> per chart a page means to show
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def status_colors() -> dict[str, str]:
    """Colour per grade status (shared by charts and the badge CSS)."""
    return dict(_STATUS_COLORS)


def _theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "range": {"category": list(OKABE_ITO)},
            "font": _FONT,
            "view": {"stroke": None},
            "axis": {"labelFontSize": 12, "titleFontSize": 12, "gridColor": "#e5e5e5"},
            "legend": {"labelFontSize": 12, "titleFontSize": 12},
            "title": {"fontSize": 14, "anchor": "start"},
        }
    }


def setup() -> None:
    """Make every chart render as inline SVG with the colour-blind-safe theme."""
    if THEME_NAME not in alt.theme.names():
        alt.theme.register(THEME_NAME, enable=False)(_theme)
    alt.theme.enable(THEME_NAME)
    alt.renderers.enable("svg")


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as inline-ready SVG (themed as the report is), drawn by vl-convert without a browser."""
    import vl_convert

    from esa.report.svg import clean_svg

    return clean_svg(vl_convert.vegalite_to_svg(chart.to_dict()))


def show(chart: alt.TopLevelMixin) -> None:
    """Display a chart as inline SVG and declare it, so the site check can verify every chart was drawn.

    Inline SVG (not an image output) keeps charts identical under Quarto and the offline renderer.
    """
    from IPython.display import HTML, display

    display(HTML(f'<figure class="esa-chart"><meta name="{CHART_META}" content="1">{chart_svg(chart)}</figure>'))


def seeds_frame(summary: Mapping[str, Any], metric: str = "ppl") -> pd.DataFrame:
    """Long table, one row per (run, seed), of a per-seed metric from summary.json."""
    rows = []
    for run in summary.get("runs", []):
        values = run.get(metric) or []
        seeds = run.get("seeds") or list(range(len(values)))
        for seed, value in zip(seeds, values):
            value = _number(value)
            if value is None:
                continue
            rows.append(
                {
                    "run": run.get("run"),
                    "model": str(run.get("model")),
                    "protocol": str(run.get("protocol")),
                    "seed": str(seed),
                    metric: float(value),
                }
            )
    return pd.DataFrame(rows, columns=["run", "model", "protocol", "seed", metric])


def _number(value: Any) -> float | None:
    # Results JSON writes non-finite floats as strings ('nan', 'inf'); those cannot be plotted.
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _wants_log(values: pd.Series) -> bool:
    # A log axis only helps when values span more than an order of magnitude.
    positive = values[values > 0]
    return len(positive) == len(values) and len(values) > 0 and positive.max() / positive.min() > 10


def per_seed_chart(
    summary: Mapping[str, Any], metric: str = "ppl", title: str = "Perplexity per seed"
) -> alt.LayerChart:
    """Per-seed points with a tick at the mean, grouped by protocol and coloured by model."""
    df = seeds_frame(summary, metric)
    log = _wants_log(df[metric])
    y = alt.Y(
        f"{metric}:Q",
        title=(metric.upper() if metric == "ppl" else metric) + (" (log scale)" if log else ""),
        scale=alt.Scale(type="log") if log else alt.Scale(zero=False),
    )
    x = alt.X("protocol:N", title="protocol", axis=alt.Axis(labelAngle=0))
    color = alt.Color("model:N", title="model")
    base = alt.Chart(df).encode(x=x, xOffset=alt.XOffset("model:N"), color=color)
    points = base.mark_point(filled=True, size=60, opacity=0.8).encode(y=y)
    mean = base.mark_tick(thickness=2.5, size=22).encode(y=alt.Y(f"mean({metric}):Q"))
    return (points + mean).properties(title=title, width=alt.Step(60), height=260)
