"""Phase-2 tables and plain-language findings, built from the spec's score runs and their artifacts."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from esa.analysis.tails import heavy_tail_summary
from esa.report.phase2_results import Phase2Results
from esa.report.tables import DASH, as_number, fmt, fmt_ci

GRADIENT_PAIR = ("grad_x_weight", "grad_squared")
DEFAULT_OVERLAP_THRESHOLD = 0.6
MEASURES = {"jaccard": "Jaccard", "overlap_coefficient": "overlap coefficient"}


def score_runs(spec: Any) -> list[Any]:
    return [run for run in getattr(spec, "runs", []) if getattr(run, "kind", None) == "score"]


def _span(values: Iterable[Any]) -> str:
    xs = [int(x) for x in (as_number(v) for v in values) if x is not None]
    if not xs or max(xs) == 0:
        return DASH
    return fmt(xs[0]) if min(xs) == max(xs) else f"{fmt(min(xs))}–{fmt(max(xs))}"


def _mean(values: Iterable[Any]) -> float | None:
    xs = [float(x) for x in (as_number(v) for v in values) if x is not None and x == x]
    return statistics.fmean(xs) if xs else None


# --- What was scored ----------------------------------------------------------------------------------------


def scored_frame(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    """One row per score run: what the spec asked for and what each seed's summary.json reports."""
    rows = []
    for run in runs:
        summaries = list(results.per_seed(run, "summary.json").values())
        weights = _span(s.get("n_scored_weights") for s in summaries)
        params = _span(s.get("n_params") for s in summaries)
        rows.append({
            "run": run.id,
            "model": run.model,
            "metrics": ", ".join(run.metrics),
            "seeds": f"{len(summaries)}/{len(run.seeds)}",
            "windows × context": f"{_span(s.get('n_windows') for s in summaries)} × {run.context}",
            "tokens": _span(s.get("n_tokens") for s in summaries),
            "matrices": _span(s.get("n_scored_tensors") for s in summaries),
            "weights scored": weights if params == DASH else f"{weights} of {params}",
            "embeddings": "included" if run.include_embeddings else "excluded",
            "lm_head": "included" if run.include_lm_head else "excluded",
            "selected per metric": ", ".join(f"top-{run.topk} {mode}" for mode in run.modes),
        })
    return pd.DataFrame(rows)


def embeddings_sentence(runs: Sequence[Any]) -> str:
    """Say plainly which runs scored the embedding and output-head matrices."""
    def where(flag: str) -> str:
        inside = [r.id for r in runs if getattr(r, flag)]
        if not inside:
            return "excluded from every run"
        if len(inside) == len(runs):
            return "included in every run"
        return f"included only in {', '.join(f'`{r}`' for r in inside)} (excluded elsewhere)"

    emb, head = where("include_embeddings"), where("include_lm_head")
    if emb == head:
        return f"Embeddings and lm_head were {emb}."
    return f"Embeddings were {emb}; lm_head was {head}."


def estimators(runs: Sequence[Any], results: Phase2Results) -> dict[str, str]:
    """metric → estimator description, from the first summary.json that has one."""
    found: dict[str, str] = {}
    for run in runs:
        for summary in results.per_seed(run, "summary.json").values():
            for metric, text in (summary.get("estimators") or {}).items():
                found.setdefault(metric, str(text))
    return found


def outside_histogram(stats: pd.DataFrame) -> str | None:
    """Which scores the log-binned histograms leave out (exact zeros, below 1e-12, at or above 1e4), per seed."""
    if stats is None or stats.empty:
        return None
    cols = [c for c in ("n_zero", "hist_underflow", "hist_overflow") if c in stats]
    if not cols:
        return None
    keys = [c for c in ("run", "metric") if c in stats]
    seeds = ["seed"] if "seed" in stats else []
    sums = stats.groupby(keys + seeds, sort=False)[cols].sum().groupby(level=keys, sort=False).mean()
    names = {"n_zero": "exact zeros", "hist_underflow": "below 10⁻¹²", "hist_overflow": "at or above 10⁴"}
    metrics = [key[-1] if isinstance(key, tuple) else key for key in sums.index]
    parts = []
    for key, row in sums.iterrows():
        what = ", ".join(f"{fmt(float(row[c]))} {names[c]}" for c in cols if row[c] > 0)
        key = key if isinstance(key, tuple) else (key,)
        name = key[-1] if metrics.count(key[-1]) == 1 else f"{key[-1]} ({key[0]})"
        if what:
            parts.append(f"`{name}`: {what}")
    return ("Not in the histograms (weights per seed): " + "; ".join(parts) + ".") if parts else None


# --- Heavy tails -----------------------------------------------------------------------------------------


def _tail_per_seed(run: Any, metric: str, results: Phase2Results) -> list[dict]:
    """Per-seed tail summaries: the grade stage's when present, else recomputed from tensor_stats.parquet."""
    stored = (results.run_analysis(run.id).get("tails") or {}).get(metric)
    if stored and stored.get("per_seed"):
        return stored["per_seed"]
    rows = []
    for stats in results.per_seed(run, "tensor_stats.parquet").values():
        chosen = stats[stats["metric"] == metric]
        if len(chosen):
            rows.append(heavy_tail_summary(chosen).as_dict())
    return rows


def _tail_null(run: Any, metric: str, results: Phase2Results) -> dict:
    """The graded excess over the no-structure null: the grade stage's, else computed from tensor_stats."""
    stored = ((results.run_analysis(run.id).get("tails") or {}).get(metric) or {}).get("null")
    if stored is not None:
        return stored
    from esa.grading.score_analysis import null_excess

    frames = {s: f[f["metric"] == metric] for s, f in results.per_seed(run, "tensor_stats.parquet").items()}
    return null_excess(run, metric, frames) if frames else {}


def tails_frame(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    """Per run and metric: the graded excess over the null (median over matrices, CI over matrices) beside the
    descriptive tail numbers (means over seeds of across-matrix summaries)."""
    rows = []
    for run in runs:
        for metric in run.metrics:
            per_seed = _tail_per_seed(run, metric, results)
            if not per_seed:
                continue
            mean = {key: _mean(s.get(key) for s in per_seed) for key in per_seed[0]}
            null = _tail_null(run, metric, results)
            defined = bool(null.get("defined"))
            rows.append({
                "run": run.id,
                "metric": metric,
                "top 1% ÷ median": mean.get("median_top1pct_over_median"),
                # Text, not numbers: a metric without a weight factor says so in the same column.
                "null top 1% ÷ median": fmt(null.get("median_null")) if defined else "no null",
                "excess over null": fmt(null.get("value")) if defined else DASH,
                "95% CI": ci_text(null.get("ci_low"), null.get("ci_high")) if defined else DASH,
                "Gini": mean.get("median_gini"),
                "Hill α": mean.get("pooled_hill_alpha"),
                "α < 2": DASH if mean.get("frac_hill_below_2") is None else f"{100 * mean['frac_hill_below_2']:.0f}%",
                "matrices": _span([mean.get("n_tensors")]),
            })
    return pd.DataFrame(rows)


def ci_text(low: Any, high: Any) -> str:
    """[low, high], or a dash when either end is missing (no interval: e.g. one seed)."""
    ends = [as_number(low), as_number(high)]
    return DASH if any(x is None or x != x for x in ends) else fmt_ci(ends)


# --- Hotspots ----------------------------------------------------------------------------------------------


def hotspot_tests_frame(runs: Sequence[Any], results: Phase2Results) -> pd.DataFrame:
    """Per run, metric and grouping: the most enriched cell of the global top-k (graded against its null) and
    the chi-square's largest p (descriptive only)."""
    rows = []
    for run in runs:
        for key, entry in (results.run_analysis(run.id).get("hotspots") or {}).items():
            metric, _, by = key.partition("/")
            e = entry.get("enrichment") or {}
            top = next((c for c in e.get("cells") or [] if c.get("cell") == e.get("top_cell")), {})
            notes = [e.get("note")] + [t.get("note") for t in entry.get("per_seed") or []]
            rows.append({
                "run": run.id,
                "metric": metric,
                "by": by,
                "most enriched": e.get("top_cell") or DASH,
                "enrichment per seed": _per_seed(top.get("per_seed") or []),
                "mean": as_number(e.get("value")),
                "95% CI": ci_text(e.get("ci_low"), e.get("ci_high")),
                "null 95th pct": as_number(e.get("null_p95")),
                "selected": _span(e.get("n_selected") or []),
                "χ² largest p": as_number(entry.get("pvalue_max")),
                "note": "; ".join(sorted({n for n in notes if n})) or DASH,
            })
    return pd.DataFrame(rows)


def unnamed_components_sentence(runs: Sequence[Any], results: Phase2Results) -> str | None:
    """Which runs scored matrices that no component rule names (counted as one ``other`` cell by component).

    None when every seed's summary.json says all were named, or predates the ``unnamed_components`` field.
    """
    parts = []
    for run in runs:
        found = [s["unnamed_components"] for s in results.per_seed(run, "summary.json").values()
                 if isinstance(s.get("unnamed_components"), dict)]
        if not found:
            continue
        worst = max(found, key=lambda u: u.get("share") or 0)
        names = ", ".join(f"`{n}`" for n in worst.get("examples") or [])
        share = as_number(worst.get("share"))
        n = worst.get("n_tensors")
        parts.append(f"`{run.id}` {fmt(n)} {'matrix' if n == 1 else 'matrices'}"
                     + (f" ({100 * share:.3g}% of scored weights)" if share is not None else "")
                     + (f", e.g. {names}" if names else ""))
    if not parts:
        return None
    return ("**Unnamed components:** " + "; ".join(parts) + ". No component rule names these matrices, so grouping "
            "by component counts them together as `other`.")


def hotspot_cells_frame(run_id: str, metric: str, by: str, results: Phase2Results) -> tuple[pd.DataFrame, dict]:
    """Every cell's enrichment per seed and mean for one (run, metric, grouping), most enriched first; and the
    enrichment summary (top cell, value, CI, null 95th percentile). Empty without an analysis."""
    e = (((results.run_analysis(run_id).get("hotspots") or {}).get(f"{metric}/{by}") or {}).get("enrichment")
         or {})
    seeds = e.get("seeds") or []
    rows = [{by: c["cell"], "parameters": fmt(c.get("n_params")), "parameter share": f"{100 * c['share_params']:.1f}%",
             **{f"seed {s}": as_number(v) for s, v in zip(seeds, c.get("per_seed") or [])},
             "mean": as_number(c.get("mean"))} for c in e.get("cells") or []]
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    return frame, e


def _per_seed(values: Iterable[Any]) -> str:
    xs = [as_number(v) for v in values]
    return DASH if all(x is None or x != x for x in xs) else ", ".join(fmt(x) for x in xs)


def hotspot_target(spec: Any) -> tuple[str, str] | None:
    """(run, metric) for the heatmap: the first hotspot criterion's, else the first run with a global selection."""
    found = hotspot_grouping(spec)
    return found[:2] if found else None


def hotspot_grouping(spec: Any) -> tuple[str, str, str] | None:
    """(run, metric, by) of the first hotspot criterion, else the first global run's first metric by component."""
    runs = {r.id: r for r in score_runs(spec)}
    for c in getattr(spec, "criteria", []):
        run = runs.get(getattr(c, "run", None))
        if getattr(c, "kind", None) == "hotspot" and run and "global" in run.modes and c.metric in run.metrics:
            return run.id, c.metric, c.by
    for run in runs.values():
        useful = [m for m in run.metrics if m != "superweight"] or run.metrics
        if "global" in run.modes:
            return run.id, useful[0], "component"
    return None


# --- Metric agreement -------------------------------------------------------------------------------------


def _verdict(value: float | None, threshold: float, status: str | None) -> str:
    if status == "pass" or (status is None and value is not None and value > threshold):
        return "agree"
    if status == "fail" or (status is None and value is not None):
        return "disagree"
    return "cannot be compared (inconclusive)"


def agreement_findings(spec: Any, grades: Mapping[str, Any] | None, results: Phase2Results) -> list[str]:
    """Markdown sentences on metric-overlap criteria; the two gradient metrics by default when none is set."""
    runs = {r.id: r for r in score_runs(spec)}
    graded = (grades or {}).get("criteria") or {}
    found = []
    pairs = [c for c in getattr(spec, "criteria", []) if getattr(c, "kind", None) == "metric_overlap"]
    for c in pairs:
        g = graded.get(c.id) or {}
        value = as_number(g.get("value"))
        if value is None and not g.get("status"):
            continue  # not graded yet
        threshold = as_number(g.get("threshold")) or c.threshold
        words = _verdict(value, threshold, g.get("status"))
        k = c.k or getattr(runs.get(c.a.run), "topk", None)
        gradient = {c.a.metric, c.b.metric} == set(GRADIENT_PAIR)
        subject = "The gradient metrics" if gradient else "These metrics"
        found.append(
            f"**{subject} {words}.** `{c.a.metric}` ({c.a.run}) vs `{c.b.metric}` ({c.b.run}), {c.mode} top-"
            f"{fmt(k)}: {MEASURES.get(c.measure, c.measure)} {fmt(value)} against the {fmt(threshold)} "
            f"threshold (criterion `{c.id}`).")
    if pairs:
        return found
    for run in runs.values():
        if not set(GRADIENT_PAIR) <= set(run.metrics):
            continue
        for mode in run.modes:
            entry = (results.run_analysis(run.id).get("overlap") or {}).get(f"{'|'.join(GRADIENT_PAIR)}/{mode}")
            value = as_number((entry or {}).get("jaccard"))
            if value is None:
                continue
            words = _verdict(value, DEFAULT_OVERLAP_THRESHOLD, None)
            found.append(f"**The gradient metrics {words}.** `grad_x_weight` vs `grad_squared` ({run.id}), {mode} "
                         f"top-{run.topk}: Jaccard {fmt(value)} against {fmt(DEFAULT_OVERLAP_THRESHOLD)}.")
    return found


def spearman_note(runs: Sequence[Any], results: Phase2Results) -> str | None:
    """Rank correlation of the two gradient metrics where their top-k sets are compared (analysis.json)."""
    parts = []
    for run in runs:
        for key, entry in (results.run_analysis(run.id).get("overlap") or {}).items():
            rho = as_number(entry.get("spearman_rho"))
            if key.startswith("|".join(GRADIENT_PAIR) + "/") and rho is not None and rho == rho:
                parts.append(f"{key.rpartition('/')[2]} ρ = {fmt(rho)} ({run.id})")
    if not parts:
        return None
    return ("Spearman correlation of `grad_x_weight` and `grad_squared` scores on the union of their top-k sets: "
            + "; ".join(parts) + ". A high ρ with a low Jaccard means the metrics rank broadly alike but pick "
            "different weights at the very top.")


# --- Super weights ------------------------------------------------------------------------------------------


def superweight_reports(runs: Sequence[Any], results: Phase2Results) -> list[tuple[str, int, dict]]:
    """(run, seed, superweight.json) for every seed of a run that scored the superweight metric."""
    return [(run.id, seed, report) for run in runs if "superweight" in run.metrics
            for seed, report in results.per_seed(run, "superweight.json").items()]


def superweight_candidates(reports: Sequence[tuple[str, int, dict]]) -> pd.DataFrame:
    """One row per candidate; an ``expert`` column only when one sits in a routed expert (MoE)."""
    candidates = [(run, seed, c) for run, seed, report in reports for c in report.get("candidates") or []]
    experts = any(c.get("expert") is not None for _, _, c in candidates)
    keys = ("layer", "module", *(("expert",) if experts else ()), "row", "col", "weight_value", "input_ratio",
            "output_ratio", "contribution")
    return pd.DataFrame([{"run": run, "seed": seed, **{k: c.get(k) for k in keys}} for run, seed, c in candidates])


def spike_frame(reports: Sequence[tuple[str, int, dict]]) -> pd.DataFrame:
    """Largest down_proj input/output spike ratios per layer, over seeds (max |act| ÷ p99.9 |act|)."""
    rows = [{"run": run, "layer": s.get("layer"), "input_ratio": as_number(s.get("input_ratio")),
             "output_ratio": as_number(s.get("output_ratio"))}
            for run, _, report in reports for s in report.get("layers") or []]
    if not rows:
        return pd.DataFrame(columns=["run", "layer", "largest input ratio", "largest output ratio"])
    df = pd.DataFrame(rows).groupby(["run", "layer"], as_index=False).max()
    return df.rename(columns={"input_ratio": "largest input ratio", "output_ratio": "largest output ratio"})


def superweight_sentence(runs: Sequence[Any], reports: Sequence[tuple[str, int, dict]]) -> str:
    asked = [r.id for r in runs if "superweight" in r.metrics]
    if not asked:
        return "No run scored the `superweight` metric, so super weights were not looked for."
    if not reports:
        return (f"Run(s) {', '.join(f'`{r}`' for r in asked)} scored `superweight`, but no `superweight.json` "
                "was found yet.")
    spikes = spike_frame(reports)
    thresholds = sorted({fmt(r.get("threshold")) for _, _, r in reports})
    seen = ""
    if len(spikes):
        i, o = spikes["largest input ratio"].max(), spikes["largest output ratio"].max()
        seen = f" The largest spike ratios seen were {fmt(i)} (input) and {fmt(o)} (output)"
        seen += f" against a threshold of {' / '.join(thresholds)}."
    n = sum(len(r.get("candidates") or []) for _, _, r in reports)
    if n == 0:
        return f"**Super weights: none found** in {len(reports)} seed report(s).{seen}"
    return f"**Super weights: {n} candidate(s) found** over {len(reports)} seed report(s).{seen}"
