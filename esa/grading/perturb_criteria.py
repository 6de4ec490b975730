"""Phase-3 evaluators: ratio, hierarchy, significance, monotonic dose-response, minimum effect, repeatability,
determinism. Each verdict uses its uncertainty (``compare_ci``): CIs resample evaluation documents, tests run on
per-document ΔNLL (see esa.grading.perturb_analysis)."""

from __future__ import annotations

import math
import statistics

from esa.analysis.power import wilcoxon_power
from esa.grading.criteria import Grade, GradeContext, compare, compare_ci, evaluator
from esa.grading.holm_families import corrected, family_of
from esa.grading.perturb_data import criterion_level, hierarchy_steps
from esa.spec.criteria import Determinism, Hierarchy, MinEffect, Monotonic, Ratio, Repeatability, Significance

REFERENCE_DZ = 0.5  # the stated effect an inconclusive significance reports power for (Cohen's "medium")


def _result(ctx: GradeContext, run_id: str) -> tuple[dict | None, list[str], str | None]:
    run = ctx.spec.run(run_id)
    evidence = [f"results/{ctx.spec.name}/{run_id}/seed{s}/conditions.parquet" for s in run.seeds]
    evidence.append(f"{run.baseline_dir()}/sequences.parquet")
    result = ctx.analysis.get("runs", {}).get(run_id)
    if result is None or "missing" in result:
        missing = (result or {}).get("missing", evidence)
        return None, evidence, f"missing evidence: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
    return result, evidence, None


def _level(criterion, result: dict) -> float | None:
    return criterion_level(criterion.level, result)


def _tests(result: dict, level: float | None, a: str, b: str) -> list[dict]:
    return [t for t in result["tests"] if t["level"] == level and t["a"] == a and t["b"] == b]


def _units(result: dict) -> str:
    """How many documents (clusters) the statistics resampled, and the fallback when there were none."""
    if result.get("clustered", False):
        return f"{result['n_docs']} documents, {result['n_windows']} windows"
    return f"{result.get('n_windows', '?')} windows as their own clusters (no doc_id column)"


@evaluator("ratio")
def grade_ratio(criterion: Ratio, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    tests = _tests(result, level, "super", criterion.control)
    if not tests:
        return Grade(None, "inconclusive", f"no super vs {criterion.control} comparison at level {level}", evidence)
    ratios = [t["ratio"] for t in tests]
    bad = [r for r in ratios if r["status"] in ("diverged", "undefined")]
    if bad:
        return Grade(None, "inconclusive", f"{len(bad)} of {len(ratios)} seeds: {bad[0]['status']} "
                     f"({bad[0]['reason']})", evidence)
    value = statistics.median(r["ratio"] for r in ratios)
    # The envelope of the seeds' CIs; an unstable seed's upper end is already +inf.
    ci = [min(r["ci_low"] for r in ratios), max(r["ci_high"] for r in ratios)]
    unstable = sum(r["status"] == "unstable" for r in ratios)
    return compare_ci(value, ci, criterion, evidence, f"median over {len(ratios)} seeds, CI the envelope of the "
                      f"seeds' cluster-bootstrap CIs ({_units(result)}); ΔPPL super "
                      f"{statistics.mean(r['delta_super'] for r in ratios):.3g} vs {criterion.control} "
                      f"{statistics.mean(r['delta_control'] for r in ratios):.3g}"
                      + (f"; {unstable} seeds with an unstable denominator" if unstable else ""))


def _point(value: float, criterion, evidence: list[str], reason: str) -> Grade:
    """compare_ci on a value with no spread of its own (a p-value, a 0/1 verdict reached from CIs)."""
    grade = compare_ci(value, [value, value], criterion, evidence, reason)
    verdict = f"{value:.4g} {criterion.comparator} {criterion.threshold:g} is {str(grade.status == 'pass').lower()}"
    grade.reason, grade.ci = f"{verdict}; {reason}", None
    return grade


@evaluator("hierarchy")
def grade_hierarchy(criterion: Hierarchy, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    steps = hierarchy_steps({r["target"] for r in result["rows"] if r["level"] == level})
    if not steps:
        return Grade(None, "inconclusive", "needs the super set and at least one control", evidence)
    family = family_of(ctx.analysis, criterion)
    if family is None:
        return Grade(None, "inconclusive", f"the analysis has no Holm family '{criterion.holm_family()}'", evidence)
    alpha = family["alpha"]
    held, reversed_, unclear = [], [], []
    for a, b in steps:
        tests = _tests(result, level, a, b)
        diffs = [t["diff"] for t in tests]
        if not diffs:
            return Grade(None, "inconclusive", f"no {a} vs {b} comparison at level {level}", evidence)
        text = (f"{a} − {b} ΔPPL {statistics.median(d['diff'] for d in diffs):.3g} "
                f"[{min(d['ci_low'] for d in diffs):.3g}, {max(d['ci_high'] for d in diffs):.3g}]")
        # A reversal must survive the phase's multiplicity control: with several seeds and steps, one 95% CI
        # below 0 is expected by chance now and then. NaN compares false: both sides diverged never reverses.
        below = [t for t in tests if t["diff"]["ci_high"] < 0]
        if any((corrected(family, t["test_key"], "less") or 1.0) < alpha for t in below):
            reversed_.append(text + " (Holm-significant in the reverse direction)")
        elif all(d["ci_low"] > 0 for d in diffs):
            held.append(text)
        else:
            unclear.append(text + (f" ({len(below)} of {len(tests)} seeds' CIs below 0, not significant after "
                                   f"Holm at α = {alpha:g} in family '{criterion.holm_family()}')" if below else ""))
    how = f"per seed a cluster-bootstrap CI of each step ({_units(result)}); "
    if reversed_:
        return _point(0.0, criterion, evidence, how + "reversed: " + "; ".join(reversed_))
    if unclear:
        return Grade(None, "inconclusive", how + "indistinguishable at noise level: " + "; ".join(unclear)
                     + ("; holds: " + "; ".join(held) if held else ""), evidence)
    return _point(1.0, criterion, evidence, how + "every step above 0 in every seed: " + "; ".join(held))


@evaluator("significance")
def grade_significance(criterion: Significance, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    tests = _tests(result, _level(criterion, result), "super", criterion.control)
    family = family_of(ctx.analysis, criterion)
    if family is None:
        return Grade(None, "inconclusive", f"the analysis has no Holm family '{criterion.holm_family()}'", evidence)
    if not tests or any(t["test"]["status"] != "ok" or corrected(family, t["test_key"]) is None for t in tests):
        why = next((t["test"]["reason"] for t in tests if t["test"]["status"] != "ok"), "no test")
        return Grade(None, "inconclusive", why, evidence)
    m = int(family["n_tests"] or 1)
    worst = max(tests, key=lambda t: corrected(family, t["test_key"]))
    value, test = corrected(family, worst["test_key"]), worst["test"]
    what = (f"largest Holm-corrected one-sided Wilcoxon p over {len(tests)} seeds ({m} distinct tests in family "
            f"'{criterion.holm_family()}'); per-document ΔNLL, n = {test['n']} {test['unit']}s "
            f"({test['n_windows']} windows)")
    grade = _point(value, criterion, evidence, what)
    grade.p = value
    if grade.status != "fail":
        return grade
    reverse = [p for t in tests if (p := corrected(family, t["test_key"], "less")) is not None
               and p < criterion.threshold]
    if reverse:
        grade.reason = (f"{criterion.control} does significantly more harm than super in {len(reverse)} of "
                        f"{len(tests)} seeds (Holm-corrected p {min(reverse):.3g} < {criterion.threshold:g}); {what}")
        return grade
    grade.status = "inconclusive"
    grade.reason = (f"{value:.4g} ≥ {criterion.threshold:g}, and not significant the other way; "
                    f"{_power_text(test, criterion.threshold, m)}; {what}")
    return grade


def _power_text(test: dict, alpha: float, m: int) -> str:
    """Power of the graded test (Wilcoxon at α/m) for the observed d_z and for a stated reference effect."""
    parts = []
    for d, name in ((test["cohen_dz"], "the observed"), (REFERENCE_DZ, "a stated")):
        power = wilcoxon_power(d, test["n"], alpha=alpha, m_tests=m)
        parts.append(f"power {power.power:.2f} for {name} d_z = {d:.3g}, {power.n_for_target:.0f} documents needed "
                     "for 80%" if math.isfinite(power.n_for_target) else f"{name} d_z: {power.reason}")
    return "; ".join(parts) + f" (one-sided Wilcoxon at α/m = {alpha / m:.3g}, via the t-test at n·3/π)"


@evaluator("monotonic")
def grade_monotonic(criterion: Monotonic, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    dose = result.get("dose", {}).get(criterion.target)
    if dose is None:
        return Grade(None, "inconclusive", "the run has a single level: no dose-response", evidence)
    if dose["status"] != "ok":
        return Grade(None, "inconclusive", dose["reason"], evidence)
    n_apart = dose.get("n_distinguishable")
    shape = f"{len(dose['levels'])} levels, {n_apart} distinguishable from 0 ({_units(result)})"
    if n_apart is not None and n_apart <= 1:
        return Grade(dose["rho"], "inconclusive", f"{shape}: at most one level's ΔPPL can be told from zero",
                     evidence, [dose["rho_ci_low"], dose["rho_ci_high"]], dose["p"])
    return compare_ci(dose["rho"], [dose.get("rho_ci_low", math.nan), dose.get("rho_ci_high", math.nan)],
                      criterion, evidence, f"{shape}; " + ("monotonic" if dose["monotonic"] else
                                                            f"{dose['n_violations']} drops between levels"),
                      p=dose["p"])


@evaluator("min_effect")
def grade_min_effect(criterion: MinEffect, ctx: GradeContext) -> Grade:
    result, evidence, problem = _result(ctx, criterion.run)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    level = _level(criterion, result)
    effect = next((e for e in result.get("effects", []) if e["level"] == level and e["target"] == criterion.target),
                  None)
    if effect is None:
        return Grade(None, "inconclusive", f"no {criterion.target} condition at level {level}", evidence)
    if effect["n_diverged"]:  # a diverged model is the largest possible effect
        return Grade(math.inf, "pass" if criterion.comparator in (">", ">=") else "fail",
                     f"{effect['n_diverged']} of {effect['n_seeds']} seeds diverged (non-finite NLL): graded as "
                     "the largest possible effect", evidence, [math.inf, math.inf])
    return compare_ci(effect["mean"], [effect["ci_low"], effect["ci_high"]], criterion, evidence,
                      f"mean over {effect['n_seeds']} seeds, cluster-bootstrap CI ({_units(result)}; baseline PPL "
                      f"{result['baseline_ppl']:.4g})")


def _pair(criterion, ctx: GradeContext) -> tuple[dict | None, list[str], str | None]:
    first, ev_a, problem_a = _result(ctx, criterion.run)
    second, ev_b, problem_b = _result(ctx, criterion.repeat)
    pair = ctx.analysis.get("pairs", {}).get(f"{criterion.run}|{criterion.repeat}")
    problem = problem_a or problem_b or (None if pair else "the analysis has no comparison of the two runs")
    return pair, ev_a + ev_b, problem


@evaluator("repeatability")
def grade_repeatability(criterion: Repeatability, ctx: GradeContext) -> Grade:
    pair, evidence, problem = _pair(criterion, ctx)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    if pair["shared_windows"]:
        return Grade(None, "inconclusive", f"same windows ({pair['shared_windows']} shared): this is a determinism "
                     "check, use kind: determinism", evidence)
    if pair["shared_docs"]:
        return Grade(None, "inconclusive", f"the runs share {pair['shared_docs']} documents: not disjoint text",
                     evidence)
    rep = pair["repeatability"].get(criterion.target)
    if rep is None:
        return Grade(None, "inconclusive", f"no shared {criterion.target} condition at level {pair['level']}",
                     evidence)
    if rep["reason"]:
        return Grade(None, "inconclusive", rep["reason"], evidence)
    folds = "/".join(str(f) for f in pair["eval_fold"])
    return compare_ci(rep["value"], [rep["ci_low"], rep["ci_high"]], criterion, evidence,
                      f"mean over {len(rep['seeds'])} seeds of |ΔPPL_a − ΔPPL_b| / mean, {criterion.target} at "
                      f"level {pair['level']:g}, folds {folds}; CI from independent document resamples of each run "
                      f"({pair['n_docs'][0]} and {pair['n_docs'][1]} documents)")


@evaluator("determinism")
def grade_determinism(criterion: Determinism, ctx: GradeContext) -> Grade:
    pair, evidence, problem = _pair(criterion, ctx)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    if not pair["same_windows"]:
        return Grade(None, "inconclusive", f"different windows ({pair['shared_windows']} shared): determinism needs "
                     "the same windows (disjoint text is kind: repeatability)", evidence)
    det = pair["determinism"]
    if not det["n_conditions"]:
        return Grade(None, "inconclusive", "no shared (seed, level, target) condition", evidence)
    value, where = det["max_abs_diff"], "seed {}, level {:g}, {}".format(*det["worst"])
    if math.isinf(value):  # diverged in one run only: as different as two outcomes can be
        return Grade(value, "fail", f"diverged in one run only ({where})", evidence)
    return compare(value, criterion, evidence, f"largest |ΔPPL_a − ΔPPL_b| over {det['n_conditions']} shared "
                   f"conditions ({where})")
