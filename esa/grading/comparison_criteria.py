"""Evaluators that compare two runs' results: ``effect_difference`` (two perturb runs' damage, paired by document)
and ``stability_difference`` (two metrics' stability across seeds). Both grade with ``compare_ci``."""

from __future__ import annotations

import math
import statistics

from esa.analysis.stability_difference import stability_difference
from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.grading.draws import overlap_problem, run_draws
from esa.grading.holm_families import corrected, family_of
from esa.spec.criteria import EffectDifference, StabilityDifference

MIN_SEEDS = 3  # two seeds give one pair: a bootstrap over seeds collapses to a point


def _evidence(ctx: GradeContext, criterion: EffectDifference) -> list[str]:
    runs = [ctx.spec.run(criterion.run), ctx.spec.run(criterion.against)]
    files = [f"results/{ctx.spec.name}/{run.id}/seed{s}/conditions.parquet" for run in runs for s in run.seeds]
    return files + [f"{runs[0].baseline_dir()}/sequences.parquet"]


def _pooled(seeds: list[dict], measure: str) -> tuple[float, list[float], str | None]:
    """Median over seeds and the envelope of their CIs (as ``ratio`` pools); or why the seeds cannot be pooled."""
    if measure == "ratio":
        ratios = [s["ratio"] for s in seeds]
        bad = next((r for r in ratios if r["status"] in ("diverged", "undefined")), None)
        if bad:
            return math.nan, [], f"a seed's ratio is {bad['status']} ({bad['reason']})"
        values = [r["ratio"] for r in ratios]
        return statistics.median(values), [min(r["ci_low"] for r in ratios), max(r["ci_high"] for r in ratios)], None
    diffs = [s["difference"] for s in seeds]
    if any(math.isnan(d["diff"]) for d in diffs):
        return math.nan, [], "both runs diverged in a seed: nothing to compare"
    values = [d["diff"] for d in diffs]
    return statistics.median(values), [min(d["ci_low"] for d in diffs), max(d["ci_high"] for d in diffs)], None


@evaluator("effect_difference")
def grade_effect_difference(criterion: EffectDifference, ctx: GradeContext) -> Grade:
    evidence = _evidence(ctx, criterion)
    comparison = (ctx.analysis.get("effect_differences") or {}).get(criterion.id)
    if comparison is None or "missing" in comparison:
        missing = (comparison or {}).get("missing", ["the comparison"])
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing)}", evidence)
    if comparison.get("reason"):
        return Grade(None, "inconclusive", comparison["reason"], evidence)
    seeds = [s for s in comparison["per_seed"] if "missing" not in s]
    if not seeds:
        return Grade(None, "inconclusive", f"no seed has the {criterion.target} condition in both runs", evidence)
    value, ci, problem = _pooled(seeds, criterion.measure)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    la, lb = comparison["levels"]
    what = (f"ΔPPL({criterion.run} @ {la:g}) − ΔPPL({criterion.against} @ {lb:g})" if criterion.measure ==
            "difference" else f"ΔPPL({criterion.run} @ {la:g}) / ΔPPL({criterion.against} @ {lb:g})")
    deltas = [(s["difference"]["delta_a"], s["difference"]["delta_b"]) for s in seeds]
    why = (f"{what} of the {criterion.target} sets, median over {len(seeds)} seeds (ΔPPL "
           f"{statistics.mean(a for a, _ in deltas):.3g} vs {statistics.mean(b for _, b in deltas):.3g}); CI the "
           f"envelope of the seeds' paired cluster-bootstrap CIs ({comparison['n_docs']} "
           f"{'documents' if comparison['clustered'] else 'windows (no doc_id column)'}, {comparison['n_windows']} "
           "windows, one draw for both runs)")
    p, test_note = _p(criterion, ctx, seeds)
    # A run that diverged is the largest possible effect: the median is infinite and the envelope alone decides.
    grade = compare_ci(0.0 if math.isinf(value) else value, ci, criterion, evidence, f"{why}; {test_note}", p=p)
    grade.value = value
    return grade


def _p(criterion: EffectDifference, ctx: GradeContext, seeds: list[dict]) -> tuple[float | None, str]:
    """The largest Holm-corrected paired Wilcoxon p over seeds, in the direction the comparator claims."""
    direction = "less" if criterion.comparator in ("<", "<=") else "greater"
    family = family_of(ctx.analysis, criterion)
    tests = [s["test"] for s in seeds]
    if family is None or any(t["status"] != "ok" for t in tests):
        why = next((t["reason"] for t in tests if t["status"] != "ok"), "no Holm family in the analysis")
        return None, f"no paired test: {why}"
    p = max(corrected(family, s["test_key"], direction) for s in seeds)
    side = "more" if direction == "greater" else "less"
    return p, (f"paired one-sided Wilcoxon ({criterion.run} does {side} harm) on per-document ΔNLL differences, "
               f"n = {tests[0]['n']} {tests[0]['unit']}s: largest Holm-corrected p {p:.3g} over seeds "
               f"({family['n_tests']} distinct tests in family '{criterion.holm_family()}')")


@evaluator("stability_difference")
def grade_stability_difference(criterion: StabilityDifference, ctx: GradeContext) -> Grade:
    from esa.grading.score_analysis import top_sets

    runs = [ctx.spec.run(criterion.a.run), ctx.spec.run(criterion.b.run)]
    evidence = list(dict.fromkeys(f"results/{ctx.spec.name}/{run.id}/seed{s}/topk.parquet" for run in runs
                                  for s in run.seeds))
    k = criterion.k or min(run.topk for run in runs)
    sides = [top_sets(ctx.spec, ctx.root, run, ref.metric, criterion.mode, k)
             for run, ref in zip(runs, (criterion.a, criterion.b))]
    missing = [path for _, files in sides for path in files]
    if missing:
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}", evidence)
    # Seeds that shared data agree more than independent replicates: the comparison would be biased.
    distinct = {run.id: run for run in runs}.values()
    problems = [f"{run.id}: {why}" for run in distinct if (why := overlap_problem(run_draws(ctx.root, ctx.spec, run)))]
    if problems:
        return Grade(None, "inconclusive", "; ".join(problems), evidence)
    result = stability_difference(sides[0][0], sides[1][0], rng_seed=k)
    why = (f"mean Jaccard {result.mean_a:.3g} ({criterion.a.run}/{criterion.a.metric}, {result.n_seeds_a} seeds) − "
           f"{result.mean_b:.3g} ({criterion.b.run}/{criterion.b.metric}, {result.n_seeds_b} seeds), {criterion.mode} "
           f"top-{k}; CI: percentile bootstrap over seeds, "
           + ("paired (one draw of the shared seeds)" if result.paired else "independent draws for each side"))
    if min(result.n_seeds_a, result.n_seeds_b) < MIN_SEEDS:
        return Grade(None if math.isnan(result.value) else result.value, "inconclusive",
                     f"needs at least {MIN_SEEDS} seeds on each side for a CI over seeds; {why}", evidence)
    return compare_ci(result.value, [result.ci_low, result.ci_high], criterion, evidence, why)
