"""Phase-5 interpretability evaluators: super weight effects, head correlations and probe drops, each graded on
the envelope of the seeds' 95% CIs (``compare_ci``) computed by the grade stage's analysis
(esa.grading.interpret_analysis)."""

from __future__ import annotations

import statistics

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.interpret_criteria import HeadCorrelation, ProbeDrop, SuperweightEffect

FILES = ("windows.parquet", "heads.parquet", "probes.parquet", "summary.json")


def _result(ctx: GradeContext, run) -> tuple[dict | None, list[str], Grade | None]:
    evidence = [f"results/{ctx.spec.name}/{run.id}/seed{s}/{f}" for s in run.seeds for f in FILES]
    result = ctx.analysis.get("runs", {}).get(run.id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return None, evidence, Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}"
                                     f"{' …' if len(missing) > 3 else ''}", evidence)
    return result, evidence, None


def _envelope(criterion, entries: list[dict], value: str, low: str, high: str, evidence: list[str],
              what: str) -> Grade:
    values = [e[value] for e in entries]
    ci = [min(e[low] for e in entries), max(e[high] for e in entries)]
    return compare_ci(statistics.median(values), ci, criterion, evidence,
                      f"{what}: median over {len(entries)} value(s), CI the envelope of their 95% CIs")


@evaluator("superweight_effect")
def grade_superweight_effect(criterion: SuperweightEffect, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    result, evidence, early = _result(ctx, run)
    if early is not None:
        return early
    entries = [e for e in result.get("superweights", []) if criterion.weight is None or e["weight"] == criterion.weight]
    which = "every detected super weight" if criterion.weight is None else f"super weight {criterion.weight}"
    seeds_with = {e["seed"] for e in entries}
    if not entries or seeds_with != set(run.seeds):
        sought = "super weight" if criterion.weight is None else f"super weight {criterion.weight}"
        return Grade(None, "inconclusive", f"the detector found no {sought} in {len(set(run.seeds) - seeds_with)} "
                     f"of {len(run.seeds)} seeds (threshold {run.superweight_threshold:g})", evidence)
    if criterion.measure == "sink_shift":
        bad = [e for e in entries if e.get("sink_shift") is None]
        if bad:
            return Grade(None, "inconclusive", bad[0].get("reason", "no sink shift"), evidence)
        return _envelope(criterion, entries, "sink_shift", "sink_ci_low", "sink_ci_high", evidence,
                         f"change of attention-sink mass after zeroing {which}")
    return _envelope(criterion, entries, "ppl_ratio", "ppl_ci_low", "ppl_ci_high", evidence,
                     f"PPL(zeroed) / PPL(model) for {which}")


@evaluator("head_correlation")
def grade_head_correlation(criterion: HeadCorrelation, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    result, evidence, early = _result(ctx, run)
    if early is not None:
        return early
    entries = [e for e in result.get("head_correlations", [])
               if (e["count"], e["stat"]) == (criterion.count, criterion.stat)]
    what = f"Spearman rho of {criterion.count} critical weights per head with {criterion.stat}"
    if len(entries) != len(run.seeds):
        return Grade(None, "inconclusive", f"{what}: the analysis has {len(entries)} of {len(run.seeds)} seeds",
                     evidence)
    undefined = [e for e in entries if e["ci_low"] != e["ci_low"] or e["rho"] != e["rho"]]  # NaN
    if undefined:
        e = undefined[0]
        return Grade(None, "inconclusive", f"{what}: seed {e['seed']} has no interval ({e['n_undefined']} layer "
                     f"resamples with constant counts or statistic, {e['n_layers']} layers)", evidence)
    return _envelope(criterion, entries, "rho", "ci_low", "ci_high", evidence,
                     f"{what} ({entries[0]['n_heads']} heads, layers resampled)")


@evaluator("probe_drop")
def grade_probe_drop(criterion: ProbeDrop, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    result, evidence, early = _result(ctx, run)
    if early is not None:
        return early
    entries = [e for e in result.get("probe_drops", [])
               if e["category"] == criterion.category and e["measure"] == criterion.measure]
    what = f"{criterion.category} probe {criterion.measure}, random ablation − critical ablation"
    if len(entries) != len(run.seeds):
        return Grade(None, "inconclusive", f"{what}: no kept items in {len(run.seeds) - len(entries)} seed(s)",
                     evidence)
    if criterion.measure == "accuracy" and any(e["baseline"] == 0 for e in entries):
        return Grade(None, "inconclusive", f"{what}: the model answers no {criterion.category} item correctly "
                     "before ablation, so there is nothing to break (grade the log-probability instead)", evidence)
    items = entries[0]["n_items"]
    return _envelope(criterion, entries, "drop", "ci_low", "ci_high", evidence,
                     f"{what} ({items} items, resampled)")
