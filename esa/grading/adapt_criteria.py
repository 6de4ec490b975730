"""Phase-5 adaptation evaluator: the difference of forgetting or gain between two training arms.

The statistics are computed once by the grade stage (esa.grading.adapt_analysis); a verdict uses its CI
(``compare_ci``): the envelope of the seeds' paired cluster-bootstrap CIs.
"""

from __future__ import annotations

import statistics

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.adapt_criteria import AdaptDifference

UNITS = {"forgetting": ("documents", "n_docs", "n_windows", "windows"),
         "gain": ("documents", "n_pair_docs", "n_pairs", "held-out pairs")}


@evaluator("adapt_difference")
def grade_adapt_difference(criterion: AdaptDifference, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    evidence = [f"results/{ctx.spec.name}/{run.id}/seed{s}/{name}" for s in run.seeds
                for name in ("conditions.parquet", "domain.parquet")] + [f"{run.baseline_dir()}/sequences.parquet"]
    result = ctx.analysis.get("runs", {}).get(criterion.run)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}"
                     f"{' …' if len(missing) > 3 else ''}", evidence)
    entries = result.get("adapt_differences", {}).get(criterion.id, [])
    what = f"{criterion.measure}({criterion.a}) − {criterion.measure}({criterion.b}), nats per token"
    bad = [e for e in entries if e["status"] != "ok"]
    if not entries or bad:
        why = (bad[0].get("reason") or bad[0]["status"]) if bad else "no difference in the analysis"
        return Grade(None, "inconclusive", f"{what}: {len(bad)} of {len(entries)} seeds have no value: {why}",
                     evidence)
    value = statistics.median(e["value"] for e in entries)
    ci = [min(e["ci_low"] for e in entries), max(e["ci_high"] for e in entries)]
    unit, n_units, n_items, items = UNITS[criterion.measure]
    return compare_ci(value, ci, criterion, evidence,
                      f"{what}: median over {len(entries)} seeds, CI the envelope of the seeds' paired cluster-"
                      f"bootstrap CIs ({result[n_units]} {unit}, {result[n_items]} {items}); mean "
                      f"{criterion.a} {statistics.mean(e['a_value'] for e in entries):.4g}, "
                      f"{criterion.b} {statistics.mean(e['b_value'] for e in entries):.4g}")
