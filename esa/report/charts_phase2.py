"""Phase-2 charts: score distributions, layer × component hotspots, stability vs k and metric agreement.

Each chart has a ``*_frame`` function that prepares a plain long table from the artifacts (tested on its own)
and a chart function that only encodes it. Call ``charts.setup()`` first for the SVG renderer and theme.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from esa.analysis.score_tables import HIST_EDGES_LOG10, layer_component_summary
from esa.report.charts import OKABE_ITO, _number, _wants_log

NO_LAYER = "—"  # embeddings and lm_head belong to no block
# Text is measured with the renderer's font but drawn with the page's, which can be wider: leave a margin so
# left-hand labels are not clipped.
PADDING = {"left": 16, "top": 5, "right": 40, "bottom": 5}
LABEL_LIMIT = 220


def series_labels(df: pd.DataFrame) -> pd.Series:
    """'metric', or 'metric (run)' where the same metric comes from more than one run."""
    if "run" not in df or df.empty:
        return df["metric"].astype(str)
    runs_per_metric = df.groupby("metric")["run"].nunique()
    shared = df["metric"].map(runs_per_metric) > 1
    return df["metric"].astype(str).where(~shared, df["metric"].astype(str) + " (" + df["run"].astype(str) + ")")


# --- Score distributions -----------------------------------------------------------------------------------


def histogram_frame(stats: pd.DataFrame, by: Sequence[str] = ("metric",)) -> pd.DataFrame:
    """Log-binned |score| counts summed over matrices, then averaged over seeds (a ``seed`` column, if any).

    Histograms share fixed edges, so they add up across matrices. Empty bins are dropped (a log axis cannot
    show zero). Columns: *by, log10_lo, log10_hi, count.
    """
    by = list(by)
    columns = [*by, "log10_lo", "log10_hi", "count"]
    if stats is None or stats.empty or "hist_counts" not in stats:
        return pd.DataFrame(columns=columns)
    df = stats[stats["hist_counts"].notna()]
    seeds = ["seed"] if "seed" in df else []
    n_bins = len(HIST_EDGES_LOG10) - 1
    rows = []
    for key, group in df.groupby(by + seeds, sort=False, dropna=False):
        total = np.sum([np.asarray(h, dtype=float)[:n_bins] for h in group["hist_counts"]], axis=0)
        key = key if isinstance(key, tuple) else (key,)
        rows += [(*key, i, c) for i, c in enumerate(total)]
    if not rows:
        return pd.DataFrame(columns=columns)
    long = pd.DataFrame(rows, columns=[*by, *seeds, "bin", "count"])
    out = long.groupby([*by, "bin"], sort=False, dropna=False)["count"].mean().reset_index()
    out = out[out["count"] > 0].copy()
    out["log10_lo"] = HIST_EDGES_LOG10[out["bin"].to_numpy()]
    out["log10_hi"] = HIST_EDGES_LOG10[out["bin"].to_numpy() + 1]
    return out[columns].reset_index(drop=True)


def distribution_chart(frame: pd.DataFrame, series: str = "metric", title: str = "Score distributions") -> alt.Chart:
    """One histogram panel per series on a shared log10 |score| axis, counts on a log axis."""
    order = list(dict.fromkeys(frame[series]))
    # Bars on a log axis need a positive baseline: half the decade below the smallest (seed-averaged) count.
    floor = 10.0 ** math.floor(math.log10(frame["count"].min())) / 2 if len(frame) else 0.5
    base = alt.Chart(frame).encode(
        x=alt.X("log10_lo:Q", title="log₁₀ |score| (bin start)", scale=alt.Scale(zero=False, nice=False)),
        x2="log10_hi:Q",
        y=alt.Y("count:Q", title=None, scale=alt.Scale(type="log", domainMin=floor), axis=alt.Axis(tickCount=3)),
        y2=alt.datum(floor),
        color=alt.Color(f"{series}:N", title=series, sort=order, legend=None),
        tooltip=[series, alt.Tooltip("log10_lo:Q", title="log10 bin start"), alt.Tooltip("count:Q", format=",.0f")],
    )
    return (
        base.mark_bar(opacity=0.85, binSpacing=0)
        .properties(width=560, height=70)
        .facet(row=alt.Row(f"{series}:N", sort=order, title=None,
                           header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=12,
                                             labelLimit=LABEL_LIMIT)))
        .properties(title=alt.TitleParams(title, subtitle="y: weights per bin (log scale), mean over seeds"),
                    padding=PADDING)
    )


# --- Layer × component hotspots ------------------------------------------------------------------------------


def hotspot_frame(topk: pd.DataFrame, stats: pd.DataFrame, metric: str, mode: str = "global") -> pd.DataFrame:
    """Selected weights per layer × component for one metric and mode, averaged over seeds.

    Columns: layer (label), component, n_params, share_params, n_selected (mean over seeds), enrichment (mean
    of share_selected / share_params). Parameter counts come from the per-matrix statistics, so a cell with no
    selected weight still appears (with 0).
    """
    columns = ["layer", "component", "n_params", "share_params", "n_selected", "enrichment"]
    if topk is None or stats is None or topk.empty or stats.empty:
        return pd.DataFrame(columns=columns)
    stats = stats[stats["metric"] == metric]
    chosen = topk[(topk["metric"] == metric) & (topk["mode"] == mode)]
    if "seed" not in stats:  # a single seed's artifacts
        stats, chosen = stats.assign(seed=0), chosen.assign(seed=0)
    cells = [layer_component_summary(seed_stats, chosen[chosen["seed"] == seed])
             for seed, seed_stats in stats.groupby("seed")]
    if not cells:
        return pd.DataFrame(columns=columns)
    both = pd.concat(cells, ignore_index=True)
    both["layer"] = both["layer"].map(lambda v: NO_LAYER if pd.isna(v) else str(int(v)))
    out = both.groupby(["layer", "component"], sort=False).agg(
        n_params=("n_params", "first"), share_params=("share_params", "first"),
        n_selected=("n_selected", "mean"), enrichment=("enrichment", "mean")).reset_index()
    return out[columns]


def layer_order(labels: Iterable[str]) -> list[str]:
    """Numeric layer labels in block order, the no-layer label last."""
    labels = set(labels)
    numbers = sorted(int(x) for x in labels if x != NO_LAYER)
    return [str(n) for n in numbers] + ([NO_LAYER] if NO_LAYER in labels else [])


def hotspot_chart(frame: pd.DataFrame, title: str | alt.TitleParams) -> alt.LayerChart:
    """Heatmap: colour = enrichment (1 = the cell's parameter share), text = selected weights."""
    y = alt.Y("layer:O", title="layer", sort=layer_order(frame["layer"]))
    x = alt.X("component:N", title="component", axis=alt.Axis(labelAngle=-30))
    top = float(max(2.0, frame["enrichment"].max() if len(frame) else 2.0))
    base = alt.Chart(frame).encode(x=x, y=y)
    rect = base.mark_rect(stroke="#ffffff").encode(
        # Light at both ends so the counts stay readable; symlog keeps 0 (nothing selected) on the scale.
        color=alt.Color("enrichment:Q", title=["enrichment", "(selected share ÷", "parameter share)"],
                        scale=alt.Scale(type="symlog", domain=[0, 1, top],
                                        range=[OKABE_ITO[4], "#f7f7f7", OKABE_ITO[3]]),
                        legend=alt.Legend(values=[v for v in (0, 0.5, 1, 2, 5, 10, 20, 50) if v <= top])),
        tooltip=["layer", "component", alt.Tooltip("n_selected:Q", title="selected (mean)", format=".3~g"),
                 alt.Tooltip("share_params:Q", format=".1%"), alt.Tooltip("enrichment:Q", format=".2f")],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("n_selected:Q", format=".3~g"))
    return (rect + text).properties(title=title, width=alt.Step(62), height=alt.Step(26), padding=PADDING)


# --- Stability vs k ---------------------------------------------------------------------------------------


def stability_frame(curve: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of stability_vs_k.parquet with a finite mean Jaccard; adds ``series`` (see series_labels)."""
    columns = ["run", "metric", "mode", "k", "mean", "ci_low", "ci_high", "n_seeds", "n_pairs", "series"]
    if curve is None or curve.empty:
        return pd.DataFrame(columns=columns)
    df = curve.copy()
    for col in ("mean", "ci_low", "ci_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df[np.isfinite(df["mean"])]
    df["series"] = series_labels(df)
    return df[[c for c in columns if c in df]].sort_values(["series", "mode", "k"]).reset_index(drop=True)


# Solid first; none like the threshold rule's [4, 4].
DASHES: tuple[list[int], ...] = ([1, 0], [2, 2], [8, 3, 2, 3], [12, 3])


def series_style(series: pd.Series) -> tuple[alt.Color, alt.StrokeDash]:
    """Colour and dash per series so that no two series look alike: the 8 palette colours are reused only
    with another dash pattern (one legend, as both share field and title)."""
    names = list(dict.fromkeys(series.astype(str)))
    n = len(OKABE_ITO)
    # Line symbols: the default point symbol would not show the dash.
    legend = alt.Legend(labelLimit=LABEL_LIMIT, symbolType="stroke", symbolStrokeWidth=2)
    color = alt.Color("series:N", title="metric", legend=legend, scale=alt.Scale(
        domain=names, range=[OKABE_ITO[i % n] for i in range(len(names))]))
    dash = alt.StrokeDash("series:N", title="metric", legend=legend, scale=alt.Scale(
        domain=names, range=[_dash(i // n) for i in range(len(names))]))
    return color, dash


def _dash(group: int) -> list[int]:
    """The dash pattern of the ``group``-th pass through the palette, distinct for every group."""
    return DASHES[group] if group < len(DASHES) else [group + 2, 2, 1, 2]


def stability_chart(frame: pd.DataFrame, threshold: float = 0.4,
                    title: str = "Top-k stability across seeds") -> alt.FacetChart:
    """Mean pairwise Jaccard (bootstrap CI as error bars) against k, one panel per mode, threshold as a rule."""
    df = frame.assign(threshold=threshold)
    log_k = _wants_log(df["k"].astype(float))
    # Short SI labels ("10k") and greedy overlap removal: a log axis over k otherwise prints colliding labels.
    x = alt.X("k:Q", title="k (weights selected)" + (" — log scale" if log_k else ""),
              scale=alt.Scale(type="log") if log_k else alt.Scale(zero=False),
              axis=alt.Axis(format="~s", labelOverlap="greedy", labelAngle=0, tickCount=6, labelFlush=True))
    color, dash = series_style(df["series"])
    base = alt.Chart().encode(x=x, color=color)
    line = base.mark_line(point=True).encode(
        strokeDash=dash,
        y=alt.Y("mean:Q", title="mean pairwise Jaccard", scale=alt.Scale(domain=[0, 1])),
        tooltip=["series", "mode", "k", alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
                 alt.Tooltip("ci_high:Q", format=".3f"), "n_seeds"],
    )
    bars = base.mark_errorbar(ticks=True).encode(y=alt.Y("ci_low:Q", title="mean pairwise Jaccard"), y2="ci_high:Q")
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color=OKABE_ITO[7]).encode(y="threshold:Q")
    modes = list(dict.fromkeys(df["mode"]))
    return (
        alt.layer(rule, bars, line, data=df)
        .properties(width=300, height=220)
        .facet(column=alt.Column("mode:N", title=None, sort=modes, header=alt.Header(labelFontSize=12)))
        .properties(title=f"{title} (dashed: threshold {threshold:g})", padding=PADDING)
    )


# --- Metric agreement --------------------------------------------------------------------------------------


def overlap_frame(overlap: Mapping[str, Any], metrics: Sequence[str] | None = None,
                  measure: str = "jaccard") -> pd.DataFrame:
    """Symmetric metric × metric table of one agreement measure from an analysis' ``overlap`` entries.

    Keys look like 'a|b/mode'. Both (a, b) and (b, a) rows are written; the diagonal is left out (trivially 1).
    Columns: mode, metric_a, metric_b, value, k.
    """
    rows = []
    for key, entry in (overlap or {}).items():
        pair, _, mode = key.rpartition("/")
        a, _, b = pair.partition("|")
        value = _number(entry.get(measure)) if isinstance(entry, Mapping) else None
        if not (a and b and mode) or value is None:
            continue
        k = entry.get("k")
        rows += [(mode, a, b, value, k), (mode, b, a, value, k)]
    df = pd.DataFrame(rows, columns=["mode", "metric_a", "metric_b", "value", "k"])
    if metrics is not None:
        df = df[df["metric_a"].isin(metrics) & df["metric_b"].isin(metrics)]
    return df.reset_index(drop=True)


def overlap_chart(frame: pd.DataFrame, metrics: Sequence[str], title: str,
                  measure: str = "Jaccard") -> alt.FacetChart:
    """Heatmap of agreement between metric pairs with the values written in, one panel per mode."""
    order = [m for m in metrics if m in set(frame["metric_a"])]
    base = alt.Chart().encode(
        x=alt.X("metric_b:N", title=None, sort=order, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("metric_a:N", title=None, sort=order),
    )
    rect = base.mark_rect(stroke="#ffffff").encode(
        color=alt.Color("value:Q", title=measure, scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["metric_a", "metric_b", alt.Tooltip("value:Q", format=".3f", title=measure), "k"],
    )
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition(alt.datum.value > 0.6, alt.value("#ffffff"), alt.value("#111111")),
    )
    modes = list(dict.fromkeys(frame["mode"]))
    return (
        alt.layer(rect, text, data=frame)
        .properties(width=alt.Step(58), height=alt.Step(30))
        .facet(column=alt.Column("mode:N", title=None, sort=modes, header=alt.Header(labelFontSize=12)))
        .properties(title=title, padding=PADDING)
    )
