"""References from one spec to another (a Phase-3 perturbation targets a Phase-2 score run's selection)."""

from __future__ import annotations

from esa.spec import Spec, SpecError


REFERRING_KINDS = ("perturb", "prune", "adapt")  # runs whose `scores:` names a score run of another (or the same) spec
CRITICAL_SET_KINDS = ("faults", "interpret")  # runs whose `critical:` names a score run's stored selection


def referenced_specs(spec: Spec) -> list[str]:
    paths = {run.scores.spec for run in spec.runs if run.kind in REFERRING_KINDS}
    paths |= {run.critical.spec for run in spec.runs if run.kind in CRITICAL_SET_KINDS}
    return sorted(paths)


def score_run_of(source: Spec, run):
    """The score run a perturb run reads: the one ``scores.run`` names, or, when it names a sweep of score runs (one
    per model), the member scoring this run's model on its data. None when there is none (or several)."""
    members = source.sweep_members(run.scores.run)
    if members:
        found = [r for r in source.runs if r.id in members and r.kind == "score"
                 and (r.model, r.data) == (run.model, run.data)]
        return found[0] if len(found) == 1 else None
    return next((r for r in source.runs if r.id == run.scores.run), None)


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
        target = score_run_of(source, run)
        problem = None
        if source.sweep_members(ref.run) and target is None:
            problem = f"sweep '{ref.run}' of {ref.spec} has no score run of {run.model} on {run.data}"
        elif target is None or target.kind != "score":
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
