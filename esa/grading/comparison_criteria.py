"""Evaluators that compare two runs' results: ``stability_difference`` (two metrics' stability across seeds),
graded with ``compare_ci``."""

from __future__ import annotations

import math

from esa.analysis.stability_difference import stability_difference
from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.grading.draws import overlap_problem, run_draws
from esa.spec.criteria import StabilityDifference

MIN_SEEDS = 3  # two seeds give one pair: a bootstrap over seeds collapses to a point


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
