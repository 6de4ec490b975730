"""Compile-time checks of architecture runs and their criteria: the score runs exist (one per model), the models,
shifts and components criteria name are there, and a shift pairs two of the compared models."""

from __future__ import annotations

from esa.compile.scaling_checks import one_per_model
from esa.spec import Spec, SpecError
from esa.spec.scaling_runs import runs_named


def check_architecture(spec: Spec) -> list[SpecError]:
    errors, compared = [], {}
    for run in spec.runs:
        if run.kind != "architecture":
            continue
        scores = runs_named(spec, run.scores, "score")
        by_model = one_per_model(scores) if scores else \
            f"'{run.scores}' is neither a score run nor a sweep of score runs of this spec"
        if isinstance(by_model, str):
            errors.append(spec.error_at_run(run.id, "scores", by_model))
            continue
        models = run.models or list(by_model)
        unknown = [m for m in models if m not in by_model]
        if unknown:
            errors.append(spec.error_at_run(run.id, "models", f"'{run.scores}' scores no run of {', '.join(unknown)}"))
            continue
        lacking = [m for m in models if run.metric not in by_model[m].metrics]
        if lacking:
            errors.append(spec.error_at_run(run.id, "metric", f"the score runs of {', '.join(lacking)} do not compute "
                                                              f"{run.metric}"))
        for name, pair in run.shifts.items():
            outside = [m for m in pair if m not in models]
            if outside:
                errors.append(spec.error_at_run(run.id, "shifts", f"shift '{name}' names {', '.join(outside)}, "
                                                                  f"not a compared model ({', '.join(models)})"))
        compared[run.id] = (models, set(run.shifts))
    for i, criterion in enumerate(spec.criteria):
        if criterion.run_kind != "architecture" or criterion.run not in compared:
            continue
        models, shifts = compared[criterion.run]
        for field in ("a", "b", "model"):
            name = getattr(criterion, field, None)
            if name is not None and name not in models:
                errors.append(spec.error_at(("criteria", i, field), f"'{name}' is not a model of architecture run "
                                                                    f"'{criterion.run}' ({', '.join(models)})"))
        shift = getattr(criterion, "shift", None)
        if shift is not None and shift not in shifts:
            errors.append(spec.error_at(("criteria", i, "shift"), f"architecture run '{criterion.run}' has no shift "
                                                                   f"'{shift}' (shifts: {', '.join(sorted(shifts)) or 'none'})"))
    return errors
