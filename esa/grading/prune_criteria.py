"""Phase-5 pruning evaluators: one arm's held-out PPL against another's (or the dense model's) at one sparsity.

The statistics are computed once by the grade stage (esa.grading.prune_analysis); a verdict uses its CI
(``compare_ci``): the envelope of the seeds' paired cluster-bootstrap CIs, documents resampled.
"""

from __future__ import annotations

import statistics

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.prune_criteria import PruneAdvantage


def _evidence(ctx: GradeContext, run) -> list[str]:
    paths = [f"results/{ctx.spec.name}/{run.id}/seed{s}/conditions.parquet" for s in run.seeds]
    return paths + [f"{run.baseline_dir()}/sequences.parquet"]


@evaluator("prune_advantage")
def grade_prune_advantage(criterion: PruneAdvantage, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    evidence = _evidence(ctx, run)
    result = ctx.analysis.get("runs", {}).get(criterion.run)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}"
                     f"{' …' if len(missing) > 3 else ''}", evidence)
    entries = result.get("prune_ratios", {}).get(criterion.id, [])
    if not entries:
        return Grade(None, "inconclusive", "the analysis has no ratio for this criterion", evidence)
    what = f"PPL({criterion.a}) / PPL({criterion.b}) at sparsity {criterion.sparsity:g} ({criterion.group} groups)"
    bad = [e for e in entries if e["status"] != "ok"]
    if bad:
        first = bad[0]
        why = first.get("reason") or (f"diverged (PPL {criterion.a}: {first.get('ppl_a')}, {criterion.b}: "
                                      f"{first.get('ppl_b')})")
        return Grade(None, "inconclusive", f"{what}: {len(bad)} of {len(entries)} seeds have no ratio: {why}",
                     evidence)
    value = statistics.median(e["ratio"] for e in entries)
    ci = [min(e["ci_low"] for e in entries), max(e["ci_high"] for e in entries)]
    ppl_a = statistics.mean(e["ppl_a"] for e in entries)
    ppl_b = statistics.mean(e["ppl_b"] for e in entries)
    return compare_ci(value, ci, criterion, evidence,
                      f"{what}: median over {len(entries)} seeds, CI the envelope of the seeds' paired cluster-"
                      f"bootstrap CIs ({result['n_docs']} documents, {result['n_windows']} windows); mean PPL "
                      f"{ppl_a:.4g} vs {ppl_b:.4g}")
