"""Phase-5 fault evaluators: protection against random bit errors (a difference of collapse rates) and flips to
collapse under attack (per seed, right-censored at the budget). The statistics come from the grade stage's
analysis (esa.grading.fault_analysis); a verdict uses its CI (``compare_ci``)."""

from __future__ import annotations

import math
import statistics

from statsmodels.stats.proportion import confint_proportions_2indep

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.spec.fault_criteria import FlipsToCollapse, ProtectionGain

ALPHA = 0.05


def _result(ctx: GradeContext, run) -> tuple[dict | None, list[str], Grade | None]:
    files = ["trials.parquet"] + (["attack.parquet"] if run.attack is not None else [])
    evidence = [f"results/{ctx.spec.name}/{run.id}/seed{s}/{f}" for s in run.seeds for f in files]
    result = ctx.analysis.get("runs", {}).get(run.id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return None, evidence, Grade(None, "inconclusive", f"missing evidence: {', '.join(missing[:3])}"
                                     f"{' …' if len(missing) > 3 else ''}", evidence)
    return result, evidence, None


@evaluator("protection_gain")
def grade_protection_gain(criterion: ProtectionGain, ctx: GradeContext) -> Grade:
    result, evidence, early = _result(ctx, ctx.spec.run(criterion.run))
    if early is not None:
        return early
    cells = {(e["format"], e["rate"], e["arm"]): e for e in result["collapse"]}
    a, b = (cells.get((criterion.format, criterion.rate, arm)) for arm in (criterion.a, criterion.b))
    what = (f"collapse rate({criterion.a}) − collapse rate({criterion.b}), {criterion.format} at rate "
            f"{criterion.rate:g}")
    if a is None or b is None:
        return Grade(None, "inconclusive", f"{what}: the analysis has no trials for one of the arms", evidence)
    low, high = confint_proportions_2indep(a["collapsed"], a["trials"], b["collapsed"], b["trials"],
                                           method="newcomb", compare="diff", alpha=ALPHA)
    value = a["collapse_rate"] - b["collapse_rate"]
    return compare_ci(value, [float(low), float(high)], criterion, evidence,
                      f"{what}: {a['collapsed']}/{a['trials']} vs {b['collapsed']}/{b['trials']} trials collapsed "
                      f"(all seeds pooled; Newcombe 95% CI of the difference)")


def _bounds(entry: dict) -> tuple[float, float, float]:
    """(point, low, high) flips to collapse of one seed: exact, or more than the budget when censored."""
    if entry["censored"]:
        return entry["budget"] + 1, entry["budget"] + 1, math.inf
    count = float(entry["flips_to_collapse"])
    return count, count, count


@evaluator("flips_to_collapse")
def grade_flips_to_collapse(criterion: FlipsToCollapse, ctx: GradeContext) -> Grade:
    run = ctx.spec.run(criterion.run)
    result, evidence, early = _result(ctx, run)
    if early is not None:
        return early
    by = {(e["format"], e["arm"], e["seed"]): e for e in result.get("attacks", [])}
    points, lows, highs, censored = [], [], [], 0
    for seed in run.seeds:
        a = by.get((criterion.format, criterion.a, seed))
        b = by.get((criterion.format, criterion.b, seed)) if criterion.b else None
        if a is None or (criterion.b and b is None):
            return Grade(None, "inconclusive", f"seed {seed} has no {criterion.format} attack for the arms named",
                         evidence)
        pa, la, ha = _bounds(a)
        censored += a["censored"] + (b["censored"] if b else 0)
        if b is None:
            points.append(pa), lows.append(la), highs.append(ha)
            continue
        pb, lb, hb = _bounds(b)
        # Both censored: the ratio has bounds (0, ∞) and no point value.
        points.append(math.nan if a["censored"] and b["censored"] else pa / pb)
        lows.append(la / hb), highs.append(ha / lb)
    what = f"flips to collapse ({criterion.a}" + (f") / ({criterion.b}" if criterion.b else "") + \
        f"), {criterion.format} storage"
    note = f"; {censored} attack(s) did not collapse within the budget (counted as more than it)" if censored else ""
    finite = [p for p in points if not math.isnan(p)]
    return compare_ci(statistics.median(finite) if finite else None, [min(lows), max(highs)], criterion, evidence,
                      f"{what}: median over {len(points)} seeds, interval the envelope of the seeds' values"
                      f"{note}")
