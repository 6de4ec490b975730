"""Criteria whose settings do not fit the run they grade, found at compile time instead of after the pipeline ran.

Errors: the grader looks up something the run never produces (a k outside the stability grid, a level, control
or target the run does not have, a seed two runs do not share), so the grade could only ever be "inconclusive".
Warnings: the grade is computed, but a setting is ignored or the verdict can never be pass or fail.
The loader has already checked that every run a criterion names exists and is of the kind it grades.
"""

from __future__ import annotations

from esa.spec import Spec, SpecError

Problem = tuple[tuple, str]  # (source path, message)


def _numbers(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _stability_ks(run) -> list[int]:
    # The k values esa.grading.score_analysis.analyze_run computes stability at.
    return sorted(set(run.ks()) | {run.topk})


def _score(spec: Spec, criterion, at: tuple) -> tuple[list[Problem], list[Problem]]:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if criterion.kind == "jaccard_stability":
        run = spec.run(criterion.run)
        grid = _stability_ks(run)
        if criterion.k is not None and criterion.k not in grid:
            errors.append((at + ("k",), f"k {criterion.k} is not in run '{run.id}' k_grid: stability is computed "
                                        f"only at k = {_numbers(grid)} (k_grid and topk)"))
        if len(run.seeds) < 3:
            warnings.append((at + ("run",), f"run '{run.id}' has {len(run.seeds)} seeds: stability needs at least 3 "
                                            f"for a CI over seeds, so the grade stays inconclusive"))
    elif criterion.kind in ("hotspot", "tail_ratio") and criterion.k is not None:
        run = spec.run(criterion.run)
        reads = {"hotspot": f"the run's whole global top-{run.topk}", "tail_ratio": "every score of each matrix"}
        if criterion.kind == "tail_ratio" or criterion.k != run.topk:
            warnings.append((at + ("k",), f"k {criterion.k} is ignored: {criterion.kind} reads {reads[criterion.kind]}"))
    elif criterion.kind == "metric_overlap":
        a, b = spec.run(criterion.a.run), spec.run(criterion.b.run)
        shared = [seed for seed in a.seeds if seed in b.seeds]
        if not shared:
            errors.append((at + ("b", "run"), f"runs '{a.id}' and '{b.id}' share no seed: the overlap compares "
                                              f"top-k sets of the same seed"))
        elif len(shared) == 1:
            warnings.append((at + ("b", "run"), f"runs '{a.id}' and '{b.id}' share one seed: a CI over seeds needs "
                                                f"two, so the grade stays inconclusive"))
    return errors, warnings


def _targets(run) -> tuple[str, ...]:
    return ("super", *run.controls)


def _perturb(spec: Spec, criterion, at: tuple) -> tuple[list[Problem], list[Problem]]:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    run = spec.run(criterion.run)
    levels = run.levels or [run.scale]
    level = getattr(criterion, "level", None)
    if criterion.kind == "monotonic":
        if len(levels) < 2:
            errors.append((at + ("run",), f"run '{run.id}' has a single level ({_numbers(levels)}): a dose-response "
                                          f"needs `levels:` with at least two"))
        if level is not None:
            warnings.append((at + ("level",), "level is ignored: monotonic reads every level of the run"))
    elif level is not None and level not in levels:
        errors.append((at + ("level",), f"level {level:g} is not one of run '{run.id}' levels ({_numbers(levels)})"))
    control = getattr(criterion, "control", None)
    if control is not None and control not in run.controls:
        errors.append((at + ("control",), f"run '{run.id}' does not perturb {control} "
                                          f"(its controls: {', '.join(run.controls) or 'none'})"))
    if criterion.kind == "hierarchy" and not run.controls:
        errors.append((at + ("run",), f"run '{run.id}' has no controls: hierarchy orders super against them"))
    paired = [run] + ([spec.run(criterion.repeat)] if hasattr(criterion, "repeat") else [])
    target = getattr(criterion, "target", None)
    for other in paired:
        if target is not None and target not in _targets(other):
            errors.append((at + ("target",), f"run '{other.id}' does not perturb {target} "
                                             f"(it perturbs {', '.join(_targets(other))})"))
    if hasattr(criterion, "repeat"):
        errors.extend(_pair(criterion, run, paired[1], at))
    return errors, warnings


def _pair(criterion, run, repeat, at: tuple) -> list[Problem]:
    """Repeatability needs disjoint evaluation documents; determinism the very same windows."""
    fold = lambda r: f"fold {r.eval_fold} of {r.eval_folds}"  # noqa: E731
    if criterion.kind == "repeatability":
        if (run.data, run.eval_folds, run.eval_fold) == (repeat.data, repeat.eval_folds, repeat.eval_fold):
            return [(at + ("repeat",), f"'{repeat.id}' evaluates the same documents as '{run.id}' ({fold(run)}): "
                                       f"give it another eval_fold (identical windows are kind: determinism)")]
    elif criterion.kind == "determinism":
        fields = ("data", "protocol", "eval_folds", "eval_fold", "eval_seed")
        differ = [f for f in fields if getattr(run, f) != getattr(repeat, f)]
        if differ:
            return [(at + ("repeat",), f"'{repeat.id}' evaluates other windows than '{run.id}' ({', '.join(differ)} "
                                       f"differ): determinism needs the same windows (disjoint text is kind: "
                                       f"repeatability)")]
    return []


def _eval(spec: Spec, criterion, at: tuple) -> tuple[list[Problem], list[Problem]]:
    errors: list[Problem] = []
    if criterion.runs == "all":
        if not any(run.kind == "eval" for run in spec.runs):
            errors.append((at + ("kind",), f"{criterion.kind} reads eval runs and this spec has none"))
    else:
        for j, name in enumerate(criterion.runs):
            kinds = sorted({run.kind for run in spec.select_runs([name])})
            if "eval" not in kinds:
                errors.append((at + ("runs", j), f"'{name}' is not an eval run ({', '.join(kinds)}): "
                                                 f"{criterion.kind} reads eval runs only"))
    if criterion.kind == "seed_cv":
        single = [run.id for run in spec.select_runs(criterion.runs) if run.kind == "eval" and len(run.seeds) < 2]
        if single:
            errors.append((at + ("runs",), f"seed_cv needs at least two seeds per run; one seed: {', '.join(single)}"))
    return errors, []


CHECKS = {"score": _score, "perturb": _perturb, "eval": _eval}


def check_criteria(spec: Spec) -> tuple[list[SpecError], list[SpecError]]:
    """(errors, warnings) of every criterion of ``spec``, located at the key they are about."""
    errors: list[SpecError] = []
    warnings: list[SpecError] = []
    for i, criterion in enumerate(spec.criteria):
        check = CHECKS.get(criterion.run_kind)
        if check is None:
            continue
        found_errors, found_warnings = check(spec, criterion, ("criteria", i))
        errors.extend(spec.error_at(path, message) for path, message in found_errors)
        warnings.extend(spec.error_at(path, message) for path, message in found_warnings)
    return errors, warnings
