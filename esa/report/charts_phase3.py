"""Phase-3 charts: ΔPPL per condition and target, and dose-response curves.

``condition_rows`` and ``condition_summary`` turn the grade stage's rows (one per run, seed, level and target)
into plain tables that the charts and the tables module share; the chart functions only encode them. Call
``charts.setup()`` first for the SVG renderer and theme.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats

from esa.names import HIERARCHY
from esa.names import TARGETS as REGISTRY_TARGETS
from esa.report.charts import OKABE_ITO

TARGETS = HIERARCHY  # the hierarchy chain
ALL_TARGETS = REGISTRY_TARGETS  # display order; random_matched ranks with random
TARGET_COLORS = {"super": OKABE_ITO[3], "random_k": OKABE_ITO[0], "random_matched": OKABE_ITO[4],
                 "bottom_k": OKABE_ITO[2]}
COUNT_COLUMNS = ["n_grew", "n_shrank", "n_unchanged"]
ROW_COLUMNS = ["run", "seed", "level", "target", "ppl", "delta_ppl", "status", "n_touched", "n_windows",
               "n_nonfinite_windows", "n_docs", "delta_ci_low", "delta_ci_high", *COUNT_COLUMNS]
SUMMARY_COLUMNS = ["run", "level", "target", "n_seeds", "n_diverged", "n_touched", "mean", "sd", "ci_low",
                   "ci_high", "status", "label", "ci_kind"]
CI_WORDS = {"documents": "95% CI, evaluation documents resampled (mean over seeds)",
            "seeds": "95% t-interval across seeds"}
PADDING = {"left": 16, "top": 5, "right": 40, "bottom": 5}
DIVERGED_GREY = "#bbbbbb"


def _target_color() -> alt.Scale:
    return alt.Scale(domain=list(ALL_TARGETS), range=[TARGET_COLORS[t] for t in ALL_TARGETS])


# --- Shared data preparation -------------------------------------------------------------------------------


def condition_rows(analysis: Mapping[str, Any] | None = None, conditions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run, seed, level and target: conditions.parquet when given, else analysis.json's rows.

    JSON writes non-finite floats as strings ('inf'), so numbers are coerced; a diverged row keeps ΔPPL = inf.
    """
    if conditions is not None and len(conditions):
        df = conditions.copy()
    else:
        df = pd.DataFrame([{"run": run_id, **row} for run_id, result in ((analysis or {}).get("runs") or {}).items()
                           for row in result.get("rows") or []])
    if df.empty:
        return pd.DataFrame(columns=ROW_COLUMNS)
    for col in ("level", "ppl", "delta_ppl", "n_touched", "n_windows", "n_nonfinite_windows", "n_docs",
                "delta_ci_low", "delta_ci_high", *COUNT_COLUMNS):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else math.nan
    df["status"] = df["status"].fillna("ok").astype(str) if "status" in df else "ok"
    return df[ROW_COLUMNS].reset_index(drop=True)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean across seeds; NaN with fewer than 2 values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _document_cis(analysis: Mapping[str, Any] | None) -> dict[tuple, tuple[float, float]]:
    """(run, level, target) -> the grade stage's CI of the mean ΔPPL over seeds, documents resampled."""
    out = {}
    for run_id, result in ((analysis or {}).get("runs") or {}).items():
        for e in result.get("effects") or []:
            lo, hi = pd.to_numeric(pd.Series([e.get("ci_low"), e.get("ci_high")]), errors="coerce")
            out[(run_id, float(e["level"]), e["target"])] = (float(lo), float(hi))
    return out


def condition_summary(rows: pd.DataFrame, confidence: float = 0.95, order: Sequence[str] = (),
                      analysis: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per run, level and target: mean, sd and an interval of ΔPPL over the seeds that did not diverge.

    The interval is the grade stage's document-resampling CI of the mean when ``analysis`` has it (``ci_kind``
    documents), else the t-interval across seeds (``ci_kind`` seeds). ``status`` is ok, diverged (every seed) or
    partly diverged; ``label`` says so in words for the charts. Runs come in ``order`` (e.g. the spec's), then as
    they first appear.
    """
    document_cis = _document_cis(analysis)
    out = []
    for (run, level, target), group in rows.groupby(["run", "level", "target"], sort=False):
        diverged = (group["status"] != "ok") | ~np.isfinite(group["delta_ppl"].to_numpy(dtype=float))
        finite = group.loc[~diverged, "delta_ppl"].to_numpy(dtype=float)
        n, k = len(group), int(diverged.sum())
        low, high = t_interval(finite, confidence)
        ci_kind = "seeds"
        if k == 0 and (run, float(level), target) in document_cis:
            (low, high), ci_kind = document_cis[(run, float(level), target)], "documents"
        status = "ok" if k == 0 else "diverged" if k == n else "partly diverged"
        touched = group["n_touched"].dropna()
        out.append({
            "run": run, "level": float(level), "target": target, "n_seeds": n, "n_diverged": k,
            "n_touched": int(touched.iloc[0]) if len(touched) and touched.nunique() == 1 else None,
            "mean": float(finite.mean()) if len(finite) else math.nan,
            "sd": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            "ci_low": low, "ci_high": high, "status": status,
            "label": "" if k == 0 else "diverged" if k == n else f"{k}/{n} diverged", "ci_kind": ci_kind,
        })
    df = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    targets = {t: i for i, t in enumerate(ALL_TARGETS)}
    runs = {r: i for i, r in enumerate(dict.fromkeys([*order, *rows["run"]]))}
    df["_run"], df["_target"] = df["run"].map(runs), df["target"].map(targets).fillna(len(targets))
    df = df.sort_values(["_run", "_target", "level"], kind="stable")
    return df.drop(columns=["_run", "_target"]).reset_index(drop=True)


def first_levels(summary: pd.DataFrame) -> pd.DataFrame:
    """Each run at its first (lowest) level: the level the criteria read by default."""
    if summary.empty:
        return summary
    first = summary.groupby("run", sort=False)["level"].transform("min")
    return summary[summary["level"] == first].reset_index(drop=True)


def dose_runs(rows: pd.DataFrame) -> list[str]:
    """Runs evaluated at more than one level."""
    levels = rows.groupby("run", sort=False)["level"].nunique()
    return [run for run, n in levels.items() if n > 1]


# --- Axis scale ----------------------------------------------------------------------------------------------


def value_scale(values: Any, max_decades: int = 5) -> tuple[alt.Scale, list[float] | None, bool]:
    """(scale, tick values, is_log) for ΔPPL values that may be negative or zero.

    Across more than a decade of |value| a symmetric log scale is used: logarithmic away from zero, linear within
    ``constant`` of it, so negative and zero ΔPPL stay on the axis. The constant (the smallest |value|'s decade)
    is kept within ``max_decades`` of the largest so float noise does not stretch the axis.
    """
    x = np.asarray([v for v in np.asarray(values, dtype=float).ravel() if np.isfinite(v)])
    nonzero = np.abs(x[x != 0])
    if len(nonzero) == 0 or nonzero.max() / nonzero.min() <= 10:
        return alt.Scale(zero=True), None, False
    top = math.ceil(math.log10(nonzero.max()))
    low = max(math.floor(math.log10(nonzero.min())), top - max_decades)
    constant = 10.0 ** low
    # Ticks from the decade above the constant: ±constant would crowd the label of 0.
    ticks = [10.0 ** e for e in range(low + 1, top + 1)]
    negative = -x[x < 0]
    neg_top = math.ceil(math.log10(negative.max())) if len(negative) and negative.max() > constant else low
    ticks = [-(10.0 ** e) for e in range(neg_top, low, -1)] + [0.0] + ticks
    return alt.Scale(type="symlog", constant=constant), ticks, True


def _y_axis(values: Any, title: str) -> tuple[alt.Scale, alt.Axis, str]:
    """Scale, axis and title shared by every layer that encodes ΔPPL on y (layers merge their axes)."""
    scale, ticks, log = value_scale(values)
    # One tick per decade leaves room for every label (Vega would otherwise drop every other one).
    axis = alt.Axis(values=ticks, format="~g", labelOverlap=False) if ticks else alt.Axis(format="~g")
    return scale, axis, title + (" (symmetric log scale)" if log else "")


# --- ΔPPL by condition -------------------------------------------------------------------------------------


def bar_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """first_levels(summary) with a ``panel`` name per run (the level added where a run has several) and a
    ``column`` label per bar that names seeds which diverged when others did not."""
    shown = first_levels(summary)
    several = summary.groupby("run", sort=False)["level"].nunique()
    panel = [f"{run} (level {level:g})" if several.get(run, 1) > 1 else str(run)
             for run, level in zip(shown["run"], shown["level"])]
    column = [f"{t} ({label})" if status == "partly diverged" else t
              for t, label, status in zip(shown["target"], shown["label"], shown["status"])]
    order = shown["target"].map({t: i for i, t in enumerate(ALL_TARGETS)}).fillna(len(ALL_TARGETS))
    return shown.assign(panel=panel, column=column, order=order)


def delta_chart(frame: pd.DataFrame, title: str = "ΔPPL by condition", columns: int = 4,
                height: int = 200) -> alt.FacetChart:
    """Mean ΔPPL per target (bars; error bars: the summary's interval, see ``condition_summary``), one panel per run.

    A condition where every seed diverged has no bar: its column is shaded grey and labelled "diverged"; where
    only some seeds diverged the bar shows the others and its axis label gives the count.
    """
    values = pd.concat([frame["mean"], frame["ci_low"], frame["ci_high"]])
    scale, axis, y_title = _y_axis(values, "ΔPPL")
    y = alt.Y("mean:Q", title=y_title, scale=scale, axis=axis)
    long_labels = (frame["status"] == "partly diverged").any()  # slanted, they would run into each other
    x = alt.X("column:N", title=None, sort=alt.EncodingSortField("order", op="min"),
              axis=alt.Axis(labelAngle=-90 if long_labels else -30))
    color = alt.Color("target:N", title="target", scale=_target_color())
    base = alt.Chart().encode(x=x)
    ok = alt.datum.status != "diverged"
    bars = base.transform_filter(ok).mark_bar(opacity=0.9).encode(
        y=y, y2=alt.datum(0), color=color,
        tooltip=["run", "target", alt.Tooltip("level:Q", format="~g"), alt.Tooltip("mean:Q", format=".4~g"),
                 alt.Tooltip("ci_low:Q", format=".4~g"), alt.Tooltip("ci_high:Q", format=".4~g"), "n_seeds"])
    errors = base.transform_filter(ok & alt.expr.isValid(alt.datum.ci_low)).mark_errorbar(
        ticks=True, color="#333333").encode(y=alt.Y("ci_low:Q", title=y_title, scale=scale, axis=axis), y2="ci_high:Q")
    shade = base.transform_filter(~ok).mark_bar(color=DIVERGED_GREY, opacity=0.35).encode(
        y=alt.value(0), y2=alt.value(height))
    words = base.transform_filter(~ok).mark_text(angle=270, fontSize=12, fontWeight="bold", color="#333333").encode(
        y=alt.value(height / 2), text="label:N")
    panels = list(dict.fromkeys(frame["panel"]))
    return (
        alt.layer(shade, bars, errors, words, data=frame)
        .properties(width=alt.Step(34), height=height)
        .facet(facet=alt.Facet("panel:N", title=None, sort=panels, header=alt.Header(labelFontSize=12)),
               columns=columns)
        .resolve_scale(x="independent")  # each panel labels its own bars
        .properties(title=alt.TitleParams(title, subtitle=["bars: mean over seeds", "error bars: " + " / ".join(
                        CI_WORDS.get(k, k) for k in dict.fromkeys(frame.get("ci_kind", pd.Series(["seeds"]))))]),
                    # The page's font can be wider than the one labels were measured with: room below for them.
                    padding={**PADDING, "bottom": 24} if long_labels else PADDING)
    )


# --- Dose-response -------------------------------------------------------------------------------------------


def dose_frame(rows: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Runs with several levels as one long table: ``kind`` seed (one finite point per seed) or mean (the
    per-level mean over the seeds that did not diverge, with ``label`` naming diverged seeds)."""
    runs = dose_runs(rows)
    if not runs:
        return pd.DataFrame(columns=["run", "level", "target", "kind", "seed", "delta_ppl", "label"])
    seeds = rows[rows["run"].isin(runs) & (rows["status"] == "ok") & np.isfinite(rows["delta_ppl"])]
    seeds = seeds.assign(kind="seed", label="", seed=seeds["seed"].astype(str))  # a string: means have none
    seeds = seeds[["run", "level", "target", "kind", "seed", "delta_ppl", "label"]]
    means = summary[summary["run"].isin(runs)].rename(columns={"mean": "delta_ppl"})
    means = means.assign(kind="mean", seed="")[seeds.columns]
    return pd.concat([seeds, means], ignore_index=True)


def dose_chart(frame: pd.DataFrame, title: str = "Dose-response", height: int = 240) -> alt.FacetChart:
    """ΔPPL against level (log x) per target: per-seed points and a line through the means, one panel per run."""
    scale, axis, y_title = _y_axis(frame["delta_ppl"], "ΔPPL")
    y = alt.Y("delta_ppl:Q", title=y_title, scale=scale, axis=axis)
    levels = sorted(set(frame["level"]))
    x = alt.X("level:Q", title="level (log scale)", scale=alt.Scale(type="log"),
              axis=alt.Axis(values=levels, format="~g", grid=False))
    color = alt.Color("target:N", title="target", scale=_target_color())
    base = alt.Chart().encode(x=x, color=color)
    seeds = base.transform_filter(alt.datum.kind == "seed").mark_point(size=40, opacity=0.7).encode(
        y=y, shape=alt.Shape("target:N", title="target", scale=alt.Scale(domain=list(ALL_TARGETS))),
        tooltip=["target", "seed", alt.Tooltip("level:Q", format="~g"), alt.Tooltip("delta_ppl:Q", format=".4~g")])
    mean = alt.expr.isValid(alt.datum.delta_ppl) & (alt.datum.kind == "mean")
    line = base.transform_filter(mean).mark_line(
        point=alt.OverlayMarkDef(filled=True, size=50), strokeWidth=2).encode(y=y)
    words = base.transform_filter((alt.datum.kind == "mean") & (alt.datum.label != "")).mark_text(
        angle=270, align="right", fontSize=10).encode(y=alt.value(4), text="label:N")
    runs = list(dict.fromkeys(frame["run"]))
    return (
        alt.layer(seeds, line, words, data=frame)
        .properties(width=360, height=height)
        .facet(column=alt.Column("run:N", title=None, sort=runs, header=alt.Header(labelFontSize=12)))
        .properties(title=alt.TitleParams(title, subtitle=["points: seeds", "line: mean over seeds"]),
                    padding=PADDING)
    )
