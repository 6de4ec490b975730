"""References from one spec to another (a Phase-3 perturbation targets a Phase-2 score run's selection)."""

from __future__ import annotations

from esa.spec import Spec, SpecError


def referenced_specs(spec: Spec) -> list[str]:
    return sorted({run.scores.spec for run in spec.runs if run.kind == "perturb"})


def check_references(spec: Spec, specs: dict[str, Spec]) -> list[SpecError]:
    """Each reference names a loaded spec, a score run in it, and a selection that run makes."""
    errors = []
    for run in spec.runs:
        if run.kind != "perturb":
            continue
        ref = run.scores
        source = specs.get(ref.spec)
        if source is None:
            errors.append(spec.error_at_run(run.id, "scores", f"no spec at {ref.spec}"))
            continue
        target = next((r for r in source.runs if r.id == ref.run), None)
        problem = None
        if target is None or target.kind != "score":
            problem = f"{ref.spec} has no score run '{ref.run}'"
        elif ref.metric not in target.metrics:
            problem = f"score run '{ref.run}' does not compute {ref.metric}"
        elif ref.mode not in target.modes:
            problem = f"score run '{ref.run}' does not select in {ref.mode} mode"
        elif ref.k > target.topk:
            problem = f"k {ref.k} exceeds score run '{ref.run}' topk {target.topk}"
        elif ref.seed is not None and ref.seed not in target.seeds:
            problem = f"score run '{ref.run}' has no seed {ref.seed}"
        elif (target.model, target.data) != (run.model, run.data):
            problem = f"score run '{ref.run}' scored {target.model} on {target.data}, this run uses {run.model}"
        if problem:
            errors.append(spec.error_at_run(run.id, "scores", problem))
    return errors
