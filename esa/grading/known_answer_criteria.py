"""Known-answer evaluators for perturb runs: how many times PPL grows when a set is perturbed (``ppl_factor``, e.g.
zeroing the detector's super weight at least doubles held-out PPL) and that another set barely moves it
(``negligible_effect``, e.g. zeroing as many random weights of the same matrix changes PPL by < 1%).

Both read the analysis's per-seed PPL(target) / PPL(baseline) and its paired document-cluster CI (both PPLs on the
same resample, esa.grading.perturb_analysis) and pool seeds as ``ratio`` does: the median of the seeds' values,
the envelope of their CIs. A diverged model is the largest possible effect.
"""

from __future__ import annotations

import math
import statistics

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.grading.perturb_criteria import _level, _result, _units
from esa.spec.criteria import NegligibleEffect, PplFactor

SHOWN = 3  # super weights named in a reason; the analysis holds the rest


def _conditions(criterion, ctx: GradeContext) -> tuple[list[dict], dict | None, list[str], str | None]:
    """The target's rows (one per seed) at the criterion's level, the run's analysis, evidence, or a problem."""
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return [], None, evidence, problem
    level = _level(criterion, result)
    if level is None:
        return [], result, evidence, f"level {criterion.level:g} is not one of the run's levels {result['levels']}"
    rows = [r for r in result["rows"] if r["level"] == level and r["target"] == criterion.target]
    if not rows:
        return [], result, evidence, f"no {criterion.target} condition at level {level:g}"
    if criterion.target == "super":  # where the stages recorded which weights they perturbed
        run = ctx.spec.run(criterion.run)
        evidence = evidence + [f"results/{ctx.spec.name}/{run.id}/seed{s}/summary.json" for s in run.seeds]
    return rows, result, evidence, None


def _weight(w: dict) -> str:
    expert = f" expert {w['expert']}" if w.get("expert") is not None else ""
    return (f"layer {w.get('layer')} {w['tensor']}{expert} [row {w['row']}, col {w['col']}] = {w['value']:.6g} "
            f"(score {w['score']:.4g})")


def named_weights(result: dict) -> str:
    """The super weight(s) the run perturbed, as its stages recorded them; seeds that share a set are listed once."""
    by_set: dict[str, list] = {}
    for entry in result.get("super_weights") or []:
        shown = "; ".join(_weight(w) for w in entry["weights"][:SHOWN])
        more = (entry.get("n_super") or len(entry["weights"])) - min(SHOWN, len(entry["weights"]))
        by_set.setdefault(shown + (f"; and {more} more" if more > 0 else ""), []).append(entry["seed"])
    if not by_set:
        return "the runs' summary.json names no super weights"
    return "; ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {text}"
                     for text, seeds in by_set.items())


def _what(criterion, result: dict) -> str:
    if criterion.target == "super":
        return f"super set ({result['perturbation']}): {named_weights(result)}"
    return f"{criterion.target} ({result['perturbation']})"


def _diverged(rows: list[dict]) -> str:
    return (f"{sum(r['status'] != 'ok' for r in rows)} of {len(rows)} seeds diverged (non-finite NLL): graded as the "
            "largest possible effect")


@evaluator("ppl_factor")
def grade_ppl_factor(criterion: PplFactor, ctx: GradeContext) -> Grade:
    rows, result, evidence, problem = _conditions(criterion, ctx)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    if any(r["status"] != "ok" for r in rows):
        status = "pass" if criterion.comparator in (">", ">=") else "fail"
        return Grade(math.inf, status, f"{_diverged(rows)}; {_what(criterion, result)}", evidence,
                     [math.inf, math.inf])
    value = statistics.median(r["ppl_factor"] for r in rows)
    ci = [min(r["factor_ci_low"] for r in rows), max(r["factor_ci_high"] for r in rows)]
    seeds = "; ".join(f"seed {r['seed']}: PPL {r['ppl']:.4g}, {r['ppl_factor']:.4g}× [{r['factor_ci_low']:.4g}, "
                      f"{r['factor_ci_high']:.4g}]" for r in rows)
    base = result["baseline_ppl"]
    return compare_ci(value, ci, criterion, evidence,
                      f"median over {len(rows)} seeds of PPL({criterion.target}) / PPL(baseline {base:.4g}) = "
                      f"{value:.4g}×, CI the envelope of the seeds' paired cluster-bootstrap CIs ({_units(result)}): "
                      f"{seeds}; {_what(criterion, result)}")


def _folded(lo: float, hi: float) -> tuple[float, float]:
    """The interval of |x| for x in [lo, hi]: it starts at 0 when [lo, hi] holds 0."""
    if lo <= 0 <= hi:
        return 0.0, max(-lo, hi)
    return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


@evaluator("negligible_effect")
def grade_negligible_effect(criterion: NegligibleEffect, ctx: GradeContext) -> Grade:
    rows, result, evidence, problem = _conditions(criterion, ctx)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    if any(r["status"] != "ok" for r in rows):
        return Grade(math.inf, "fail", f"{_diverged(rows)}; {_what(criterion, result)}", evidence,
                     [math.inf, math.inf])
    # Per seed the relative change PPL(target)/PPL(baseline) − 1 and its CI, folded to the interval of |change|:
    # the envelope then lies below the threshold only when every seed's CI lies inside (−threshold, threshold).
    signed = [(r["ppl_factor"] - 1, r["factor_ci_low"] - 1, r["factor_ci_high"] - 1) for r in rows]
    folded = [_folded(lo, hi) for _, lo, hi in signed]
    value = statistics.median(abs(change) for change, _, _ in signed)
    ci = [min(lo for lo, _ in folded), max(hi for _, hi in folded)]
    seeds = "; ".join(f"seed {r['seed']}: PPL {r['ppl']:.6g}, {change:+.3g} [{lo:+.3g}, {hi:+.3g}], "
                      f"{r.get('n_touched', '?')} weights" for r, (change, lo, hi) in zip(rows, signed))
    return compare_ci(value, ci, criterion, evidence,
                      f"median over {len(rows)} seeds of |PPL({criterion.target}) / PPL(baseline "
                      f"{result['baseline_ppl']:.6g}) − 1| = {value:.3g}; per seed the relative change with its "
                      f"paired cluster-bootstrap CI ({_units(result)}): {seeds}; CI the envelope of the seeds' CIs "
                      f"of |change|; {_what(criterion, result)}")
