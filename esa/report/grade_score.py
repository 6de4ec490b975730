"""Phase-2 evaluators: stability, cross-metric agreement, heavy tails and hotspots, read from the analyses."""

from __future__ import annotations

from esa.report.grading import Grade, GradeContext, compare, evaluator
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


@evaluator("jaccard_stability")
def grade_jaccard_stability(criterion: JaccardStability, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    k = _k(criterion, ctx, criterion.run)
    entry = result["stability"].get(f"{criterion.metric}/{criterion.mode}/k{k}")
    if entry is None:
        return Grade(None, "inconclusive", f"no stability computed at k={k}", evidence)
    if entry["n_seeds"] < 2:
        return Grade(None, "inconclusive", "stability needs at least two seeds", evidence)
    grade = compare(entry["mean"], criterion, evidence,
                    f"mean of {entry['n_pairs']} seed pairs, min {entry['min']:.3g}, k={k}")
    grade.ci = [entry["ci_low"], entry["ci_high"]]
    return grade


@evaluator("metric_overlap")
def grade_metric_overlap(criterion: MetricOverlap, ctx: GradeContext) -> Grade:
    from esa.report.analysis_phase2 import pair_overlap

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
    return compare(result[criterion.measure], criterion, evidence,
                   f"{criterion.measure} over {len(result['seeds'])} shared seeds, k={k}; "
                   f"Spearman ρ {result['spearman_rho']:.3g}")


@evaluator("tail_ratio")
def grade_tail_ratio(criterion: TailRatio, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    tails = result["tails"][criterion.metric]
    return compare(tails["value"], criterion, evidence,
                   "median over matrices of mean(top 1%)/median, averaged over seeds")


@evaluator("hotspot")
def grade_hotspot(criterion: Hotspot, ctx: GradeContext) -> Grade:
    result, evidence, problem = _run_analysis(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    test = result["hotspots"].get(f"{criterion.metric}/{criterion.by}")
    if test is None:
        return Grade(None, "inconclusive", "no global selection to test", evidence)
    grade = compare(test["pvalue_max"], criterion, evidence,
                    f"chi-square by {criterion.by}, largest p over {len(test['per_seed'])} seeds")
    grade.p = test["pvalue_max"]
    return grade


@evaluator("ablation_spearman")
def grade_ablation_spearman(criterion: AblationSpearman, ctx: GradeContext) -> Grade:
    import math

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
    grade = compare(value, criterion, evidence, f"mean over {len(table)} seeds; n = {int(table['n'].iloc[0])} "
                    f"ablated weights, ρ on the top set {float(table['rho_top'].mean()):.3g}")
    if len(table) == 1 and math.isfinite(float(table["ci_low"].iloc[0])):
        grade.ci = [float(table["ci_low"].iloc[0]), float(table["ci_high"].iloc[0])]
    return grade
