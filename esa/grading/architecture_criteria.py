"""Architecture evaluators: a group share difference between two models (``share_difference``), one model's
group share or enrichment (``component_share``), MoE expert balance (``expert_balance``) and the base → instruct
top-k shift (``topk_shift``), graded from the summary esa.analysis.architecture.analyze_architecture returns.

Every verdict uses its CI over seeds (``compare_ci``; a t-interval, Welch's for a difference): pass only when the whole CI clears the
threshold. A missing run, model or pair, or a single seed (no CI), is inconclusive. ``GRADERS`` maps each kind to
its evaluator (registered on import).
"""

from __future__ import annotations

from esa.grading.criteria import Grade, GradeContext, compare_ci, evaluator
from esa.grading.run_summary import run_summary
from esa.spec.architecture_criteria import ComponentShare, ExpertBalance, ShareDifference, TopkShift


def _fmt(x, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def _interval(ci) -> str:
    return "no CI" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _seeds(summary: dict, *models: str) -> str:
    counts = ", ".join(f"{m}: {summary['models'][m]['n_seeds']} seeds" for m in models)
    return f"{counts}; metric {summary.get('metric')}; 95% CIs: t-intervals over seeds"


def _graded(value, ci, criterion, evidence: list[str], why: str) -> Grade:
    if ci is None and value is not None:
        return Grade(value, "inconclusive", f"{value:.4g} has no CI: an interval over seeds needs at least 2 seeds; "
                     f"{why}", evidence)
    return compare_ci(value, ci, criterion, evidence, why)


def _missing_models(summary: dict, *models: str) -> str | None:
    absent = [m for m in models if m not in summary.get("models", {})]
    return f"model {', '.join(absent)} is not in the architecture run (has: {', '.join(summary.get('models', {}))})" \
        if absent else None


def grade_share_difference_summary(criterion: ShareDifference, summary: dict, evidence: list[str]) -> Grade:
    problem = _missing_models(summary, criterion.a, criterion.b)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    diff = summary["differences"][criterion.a].get(criterion.b, {}).get(criterion.group)
    if diff is None:
        return Grade(None, "inconclusive", f"no difference {criterion.a} − {criterion.b} in the run", evidence)
    shares = [summary["models"][m]["groups"][criterion.group]["share"] for m in (criterion.a, criterion.b)]
    perm = diff.get("permutation")
    test = ("" if not perm else f"; permutation p (a > b) {perm['p_greater']:.3g}, (a < b) {perm['p_less']:.3g}, "
            f"{'exact over' if perm['exact'] else 'drawn from'} {perm['n_relabelings']} relabelings of seeds, "
            f"smallest possible {perm['min_p']:.3g}, uncorrected")
    why = (f"{criterion.group} share of score mass {criterion.a} {_fmt(shares[0]['mean'])} "
           f"{_interval(shares[0]['ci'])} − {criterion.b} {_fmt(shares[1]['mean'])} {_interval(shares[1]['ci'])}"
           f"{test}; {_seeds(summary, criterion.a, criterion.b)}")
    return _graded(diff["value"], diff["ci"], criterion, evidence, why)


def grade_component_share_summary(criterion: ComponentShare, summary: dict, evidence: list[str]) -> Grade:
    problem = _missing_models(summary, criterion.model)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    group = summary["models"][criterion.model]["groups"][criterion.group]
    stat = group[criterion.measure]
    why = (f"{criterion.model} {criterion.group}: {_fmt(group['share']['mean'])} of the score mass on "
           f"{_fmt(group['param_share'])} of the parameters ({criterion.measure}); {_seeds(summary, criterion.model)}")
    return _graded(stat["mean"], stat["ci"], criterion, evidence, why)


def grade_expert_balance_summary(criterion: ExpertBalance, summary: dict, evidence: list[str]) -> Grade:
    problem = _missing_models(summary, criterion.model)
    if problem:
        return Grade(None, "inconclusive", problem, evidence)
    moe = summary["models"][criterion.model]["moe"]
    if moe is None:
        return Grade(None, "inconclusive", f"{criterion.model} has no expert matrices", evidence)
    shares = ", ".join(f"{e['expert']}: {_fmt(e['share']['mean'], '.3g')}" for e in moe["experts"])
    why = (f"max/min expert share of {criterion.model}'s expert mass over {moe['n_experts']} experts ({shares}); "
           f"{_seeds(summary, criterion.model)}")
    return _graded(moe["max_min_ratio"]["mean"], moe["max_min_ratio"]["ci"], criterion, evidence, why)


def grade_topk_shift_summary(criterion: TopkShift, summary: dict, evidence: list[str]) -> Grade:
    shift = summary.get("shifts", {}).get(criterion.shift)
    if shift is None:
        return Grade(None, "inconclusive", f"no base → instruct pair {criterion.shift} in the architecture run",
                     evidence)
    if not shift["n_seeds"]:
        return Grade(None, "inconclusive", f"{shift['base']} and {shift['instruct']} share no seed", evidence)
    chance = shift["chance_jaccard"]["mean"]
    where = (f"{shift['base']} → {shift['instruct']}, per-matrix top-{shift['k'] or 'stored k'}, "
             f"{shift['n_seeds']} shared seeds, paired over seeds")
    if criterion.measure == "kept":
        entry = shift["components"].get(criterion.component)
        if entry is None:
            return Grade(None, "inconclusive", f"no {criterion.component} matrices in the top-k of {where}", evidence)
        stat = entry["kept"]
        why = (f"share of the base {criterion.component} top-k kept by the instruct model (chance "
               f"{_fmt(entry['chance_kept']['mean'], '.3g')}); {where}")
    else:
        stat = shift[criterion.measure]
        why = (f"pooled Jaccard {_fmt(shift['jaccard']['mean'])} against {_fmt(chance, '.3g')} for random k-subsets of each "
               f"matrix ({criterion.measure}); {where}")
    return _graded(stat["mean"], stat["ci"], criterion, evidence, why)


def _from_context(grade_summary):
    def grade(criterion, ctx: GradeContext) -> Grade:
        summary, evidence, problem = run_summary(ctx, criterion.run, "architecture")
        if problem:
            return Grade(None, "inconclusive", problem, evidence)
        return grade_summary(criterion, summary, evidence)
    grade.__name__ = grade_summary.__name__.removesuffix("_summary")
    return grade


grade_share_difference = _from_context(grade_share_difference_summary)
grade_component_share = _from_context(grade_component_share_summary)
grade_expert_balance = _from_context(grade_expert_balance_summary)
grade_topk_shift = _from_context(grade_topk_shift_summary)

GRADERS = {"share_difference": grade_share_difference, "component_share": grade_component_share,
           "expert_balance": grade_expert_balance, "topk_shift": grade_topk_shift}
for _kind, _grade in GRADERS.items():
    evaluator(_kind)(_grade)
