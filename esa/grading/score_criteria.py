"""Phase-2 evaluators: stability, cross-metric agreement, heavy tails and hotspots, read from the analyses.

Every verdict uses its uncertainty (``compare_ci``): pass only when the CI clears the threshold. Tails and
hotspots are graded against their value under a null with no structure, not against a bare constant.
"""

from __future__ import annotations

import math

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.criteria import AblationSpearman, Hotspot, JaccardStability, MetricOverlap, TailRatio


def _run_analysis(ctx: GradeContext, run_id: str) -> tuple[dict | None, list[str], str | None]:
    run = ctx.spec.run(run_id)
    evidence = [f"results/{ctx.spec.name}/{run_id}/seed{s}/topk.parquet" for s in run.seeds]
    result = ctx.analysis.get("runs", {}).get(run_id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return None, evidence, f"missing evidence: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
    return result, evidence, None


def _k(criterion, ctx: GradeContext, run_id: str) -> int:
    return criterion.k or ctx.spec.run(run_id).topk


def _f(value) -> float:
    """A number from an analysis entry (JSON writes NaN as the string 'nan'); NaN when absent."""
    return float("nan") if value is None else float(value)


def _shown(value: float) -> float | None:
    """The value an inconclusive grade reports: None when it is undefined."""
    return None if math.isnan(value) else value


def _ci(entry: dict, low: str = "ci_low", high: str = "ci_high") -> list[float] | None:
    ci = [_f(entry.get(low)), _f(entry.get(high))]
    return None if any(math.isnan(c) for c in ci) else ci


@evaluator("jaccard_stability")
def grade_jaccard_stability(criterion: JaccardStability, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    k = _k(criterion, ctx, criterion.run)
    entry = result["stability"].get(f"{criterion.metric}/{criterion.mode}/k{k}")
    if entry is None:
        return Grade(None, "inconclusive", f"no stability computed at k={k}", evidence)
    why = f"mean of {entry['n_pairs']} seed pairs, min {_f(entry['min']):.3g}, k={k}"
    if entry["n_seeds"] < 3:
        # Two seeds give one pair: the bootstrap over seeds collapses to a zero-width interval.
        return Grade(_shown(_f(entry["mean"])), "inconclusive",
                     f"stability needs at least 3 seeds for a CI over seeds, has {entry['n_seeds']}; {why}", evidence)
    return compare_ci(_f(entry["mean"]), _ci(entry), criterion, evidence, why)


@evaluator("metric_overlap")
def grade_metric_overlap(criterion: MetricOverlap, ctx: GradeContext) -> Grade:
    from esa.grading.score_analysis import pair_overlap

    evidence = []
    for ref in (criterion.a, criterion.b):
        _, files, problem = _run_analysis(ctx, ref.run)
        evidence += files
        if problem:
            return Grade(None, "inconclusive", problem, evidence)
    k = criterion.k or min(ctx.spec.run(criterion.a.run).topk, ctx.spec.run(criterion.b.run).topk)
    result = pair_overlap(ctx.spec, ctx.root, (ctx.spec.run(criterion.a.run), criterion.a.metric),
                          (ctx.spec.run(criterion.b.run), criterion.b.metric), criterion.mode, k)
    if result.get("missing") or not result["seeds"]:
        return Grade(None, "inconclusive", "the two runs share no seed with results", evidence)
    value = _f(result[criterion.measure])
    why = (f"{criterion.measure} over {len(result['seeds'])} shared seeds, k={k}; "
           f"Spearman ρ {_f(result['spearman_rho']):.3g}")
    if len(result["seeds"]) < 2:
        return Grade(_shown(value), "inconclusive", f"needs ≥ 2 shared seeds for a CI over seeds; {why}", evidence)
    ci = (result.get("ci") or {}).get(criterion.measure)
    return compare_ci(value, None if ci is None else _ci({"lo": ci[0], "hi": ci[1]}, "lo", "hi"), criterion,
                      evidence, why + "; CI: percentile bootstrap over seeds")


@evaluator("tail_ratio")
def grade_tail_ratio(criterion: TailRatio, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    evidence = [path.replace("topk.parquet", "tensor_stats.parquet") for path in evidence]
    tails = result["tails"].get(criterion.metric)
    if tails is None:
        return Grade(None, "inconclusive", f"run {criterion.run} did not score {criterion.metric}", evidence)
    null = tails.get("null") or {}
    if not null.get("defined"):
        return Grade(None, "inconclusive", null.get("reason") or f"no null defined for {criterion.metric}",
                     evidence)
    value = _f(null.get("value"))
    why = (f"median over {null['n_matrices']} matrices of top-1%/median over its null |w|^{null['weight_power']}"
           f"·shuffled data factor (observed {_f(null.get('median_observed')):.3g}, null "
           f"{_f(null.get('median_null')):.3g}); CI: bootstrap over matrices")
    if null.get("note"):
        return Grade(_shown(value), "inconclusive", f"{null['note']}; {why}", evidence)
    return compare_ci(value, _ci(null), criterion, evidence, why)


@evaluator("hotspot")
def grade_hotspot(criterion: Hotspot, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    test = result["hotspots"].get(f"{criterion.metric}/{criterion.by}")
    if test is None or "enrichment" not in test:
        return Grade(None, "inconclusive", "no global selection to test", evidence)
    enrich = test["enrichment"]
    value, null_p95 = _f(enrich.get("value")), _f(enrich.get("null_p95"))
    # Beating the threshold is not enough: random draws must rarely reach it either.
    effective = criterion.threshold
    if criterion.comparator in (">", ">=") and math.isfinite(null_p95):
        effective = max(criterion.threshold, null_p95)
    why = (f"largest mean enrichment by {criterion.by}: {enrich.get('top_cell')} over {len(enrich['seeds'])} "
           f"seeds; threshold {criterion.threshold:g}, null 95th percentile {null_p95:.3g} → graded against "
           f"{effective:.3g}")
    if enrich.get("note"):
        return Grade(_shown(value), "inconclusive", f"{enrich['note']}; {why}", evidence)
    return compare_ci(value, _ci(enrich), criterion.model_copy(update={"threshold": effective}),
                      evidence, why)


@evaluator("ablation_spearman")
def grade_ablation_spearman(criterion: AblationSpearman, ctx: GradeContext) -> Grade:
    import pandas as pd

    run = ctx.spec.run(criterion.run)
    evidence = [f"results/{ctx.spec.name}/{run.id}/seed{s}/transfer.parquet" for s in run.seeds]
    missing = [path for path in evidence if not (ctx.root / path).exists()]
    if missing:
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}", evidence)
    rows = []
    for path in evidence:
        table = pd.read_parquet(ctx.root / path)
        rows.append(table[(table["metric"] == criterion.metric) & (table["source"] == criterion.source)])
    table = pd.concat(rows)
    if table.empty:
        return Grade(None, "inconclusive", f"no {criterion.source} scores of {criterion.metric} were checked",
                     evidence)
    value = float(table["rho"].mean())
    why = (f"mean over {len(table)} seeds; n = {int(table['n'].iloc[0])} ablated weights, ρ on the top set "
           f"{float(table['rho_top'].mean()):.3g}")
    lows, highs = table["ci_low"].astype(float), table["ci_high"].astype(float)
    if lows.isna().any() or highs.isna().any():
        return Grade(_shown(value), "inconclusive", f"a seed has no CI on ρ; {why}", evidence)
    # The envelope of the seeds' CIs: a pass needs every seed's interval to clear the threshold.
    return compare_ci(value, [float(lows.min()), float(highs.max())], criterion, evidence,
                      why + "; CI: envelope of the seeds' CIs")
