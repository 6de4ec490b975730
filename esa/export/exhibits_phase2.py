"""Phase-2 exhibits. The functions above ``build`` are the glue reports/phase2.qmd runs between the artifacts and
the chart/table builders, so the page and the export draw the same figures from the same frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from esa.export.exhibits import Exhibits, add_grades, read_json, require, rerun_hint
from esa.report import charts_phase2 as charts2
from esa.report import tables
from esa.report import tables_phase2 as tables2
from esa.report.phase2_results import Phase2Results


def all_stats(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    """tensor_stats.parquet of every seed of every run, stacked (empty when none exist)."""
    frames = [results.stacked(r, "tensor_stats.parquet") for r in runs]
    return pd.concat(frames or [pd.DataFrame()], ignore_index=True)


def threshold(spec: Any, grades: Mapping[str, Any] | None, kind: str, default: float) -> float:
    """The first criterion of a kind: its graded threshold, else the spec's, else the default."""
    for c in getattr(spec, "criteria", []):
        if c.kind == kind:
            graded = ((grades or {}).get("criteria") or {}).get(c.id) or {}
            return tables.as_number(graded.get("threshold")) or c.threshold
    return default


def scored_table(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    # One column per run: the rows stay readable however many metrics a run scores.
    scored = tables2.scored_frame(runs, results).set_index("run").T
    scored.columns.name = None
    return scored


def distribution_frame(stats: pd.DataFrame) -> pd.DataFrame:
    """Histogram counts per run and metric with a ``series`` label (empty without statistics)."""
    hist = charts2.histogram_frame(stats, by=("run", "metric")) if len(stats) else pd.DataFrame()
    if not hist.empty:
        hist["series"] = charts2.series_labels(hist)
    return hist


def distribution_chart(hist: pd.DataFrame) -> alt.FacetChart:
    return charts2.distribution_chart(hist, series="series", title="|score| per weight, all scored matrices")


def overlap_charts(runs: Sequence[Any], results: Phase2Results) -> list[tuple[str, alt.FacetChart]]:
    """(run, metric-agreement heatmap) for each run with two or more metrics and a recorded overlap."""
    found = []
    for run in runs:
        frame = charts2.overlap_frame(results.run_analysis(run.id).get("overlap") or {}, run.metrics)
        if len(run.metrics) < 2 or frame.empty:
            continue
        title = f"Top-{run.topk} Jaccard between metrics — run {run.id}"
        found.append((run.id, charts2.overlap_chart(frame, run.metrics, title=title)))
    return found


@dataclass(frozen=True)
class Hotspot:
    run_id: str
    metric: str
    n_seeds: int
    heat: pd.DataFrame
    chart: alt.LayerChart | None  # None when the run has no top-k yet
    by: str = "component"
    cells: pd.DataFrame | None = None  # graded enrichment per cell and seed (empty without an analysis)
    enrichment: Mapping[str, Any] | None = None  # top cell, value, CI, null 95th percentile


def hotspot(spec: Any, runs: Sequence[Any], results: Phase2Results) -> Hotspot | None:
    """The layer × component heatmap and the per-cell enrichment of the hotspot criterion's run (None when no
    run selects globally)."""
    target = tables2.hotspot_grouping(spec) if spec else None
    if target is None:
        return None
    run_id, metric, by = target
    run = next(r for r in runs if r.id == run_id)
    cells, enrichment = tables2.hotspot_cells_frame(run_id, metric, by, results)
    topk = results.stacked(run, "topk.parquet")
    heat = charts2.hotspot_frame(topk, results.stacked(run, "tensor_stats.parquet"), metric, "global")
    if heat.empty:
        return Hotspot(run_id, metric, 0, heat, None, by, cells, enrichment)
    title = alt.TitleParams(f"{metric}: global top-{run.topk} per layer × component", subtitle=f"run {run_id}")
    return Hotspot(run_id, metric, topk["seed"].nunique(), heat, charts2.hotspot_chart(heat, title), by, cells,
                   enrichment)


def hotspot_sentence(spot: Hotspot) -> str | None:
    """What the graded hotspot number is, for the per-cell enrichment table."""
    e = spot.enrichment or {}
    if not e.get("top_cell"):
        return None
    ci = tables2.ci_text(e.get("ci_low"), e.get("ci_high"))
    return (f"Enrichment of each {spot.by} in `{spot.metric}`'s global top-k (run `{spot.run_id}`): its share of "
            f"the selected weights ÷ its share of the parameters, per seed. Most enriched {spot.by}: "
            f"**{e['top_cell']}**, mean {tables.fmt(e.get('value'))} (95% CI {ci}, "
            f"bootstrap over seeds). Drawing the same number of weights at random in proportion to parameter "
            f"counts, the largest mean enrichment reaches {tables.fmt(e.get('null_p95'))} in 95% of "
            f"{tables.fmt(e.get('n_null'))} draws: the criterion is graded against the larger of its threshold "
            "and that number.")


def build(root: Path) -> Exhibits:
    from esa.spec import load_spec

    hint = rerun_hint("phase2")
    spec = load_spec(require(root, "specs/phase2.yaml", "the phase-2 spec names the runs to export"))
    grades = read_json(require(root, "results/phase2/grades.json", hint))
    require(root, "results/phase2/analysis.json", hint)
    results = Phase2Results(root)
    runs = tables2.score_runs(spec)
    out = Exhibits("phase2")
    add_grades(out, grades)

    scored = scored_table(runs, results)
    out.table("scored", "Phase 2: what was scored, one column per score run. "
              + tables2.embeddings_sentence(runs), scored.reset_index(names=""))
    hist = distribution_frame(all_stats(runs, results))
    if not hist.empty:
        out.figure("score-distributions", "Phase 2: |score| per weight over all scored matrices (log-binned counts, "
                   "mean over seeds).", distribution_chart(hist))
    curve = charts2.stability_frame(results.stability())
    if not curve.empty:
        out.figure("stability-vs-k", "Phase 2: mean pairwise Jaccard of the top-k sets across seeds against k; "
                   "error bars: 95% bootstrap over seeds.",
                   charts2.stability_chart(curve, threshold=threshold(spec, grades, "jaccard_stability", 0.4)))
    for run_id, chart in overlap_charts(runs, results):
        out.figure(f"metric-agreement-{run_id}", f"Phase 2: top-k Jaccard between metrics, run {run_id}.", chart)
    out.table("heavy-tails", "Phase 2: heavy tails per run and metric. Excess over null = top-1% mean ÷ median of "
              "the scores over the same ratio once the data factor is shuffled against the weights (median over "
              "matrices, 95% CI by bootstrap over matrices; graded); the other columns are descriptive (medians "
              "over matrices, means over seeds).", tables2.tails_frame(runs, results))
    spot = hotspot(spec, runs, results)
    if spot is not None and spot.chart is not None:
        out.figure("hotspots", f"Phase 2: {spot.metric} global top-k per layer × component, run {spot.run_id} "
                   f"(mean over {spot.n_seeds} seed(s)); colour: enrichment over the parameter share.", spot.chart)
    out.table("hotspot-tests", "Phase 2: most enriched layer or component of each global top-k (share of the "
              "selected weights ÷ share of the parameters; mean over seeds, 95% CI by bootstrap over seeds) against "
              "the 95th percentile random draws reach; the chi-square p is descriptive only.",
              tables2.hotspot_tests_frame(runs, results))
    reports = tables2.superweight_reports(runs, results)
    out.table("superweight-candidates", "Phase 2: super-weight candidates.", tables2.superweight_candidates(reports))
    out.table("superweight-spikes", "Phase 2: largest down_proj spike ratios per layer (max |activation| ÷ its "
              "99.9th percentile), over seeds.", tables2.spike_frame(reports))
    return out
