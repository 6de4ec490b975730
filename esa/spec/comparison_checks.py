"""Load-time checks of criteria that compare two perturb runs document by document (``effect_difference``)."""

from __future__ import annotations

# The run fields that decide a perturb run's baseline windows (PerturbRun.baseline_dir).
BASELINE_FIELDS = ("model", "data", "protocol", "dtype", "eval_seed", "eval_folds", "eval_fold")


def _levels(run) -> list[float]:
    return list(run.levels or [run.scale])


def check_effect_difference(spec, criterion, path: tuple) -> list[tuple[tuple, str]]:
    """A paired comparison needs the same windows in both runs: the same baseline, a shared seed, real levels."""
    run, against = spec.run(criterion.run), spec.run(criterion.against)
    if run.id == against.id:
        return [(path + ("against",), f"compares run '{run.id}' with itself")]
    problems = []
    if run.baseline_dir() != against.baseline_dir():
        differ = ", ".join(f"{field} {getattr(run, field)} vs {getattr(against, field)}" for field in BASELINE_FIELDS
                           if getattr(run, field) != getattr(against, field))
        problems.append((path + ("against",), f"runs '{run.id}' and '{against.id}' do not share their baseline "
                                              f"windows ({differ}): a paired comparison needs the same windows"))
    if not set(run.seeds) & set(against.seeds):
        problems.append((path + ("against",), f"runs '{run.id}' and '{against.id}' share no seed to pair"))
    for field, which in (("level", run), ("against_level", against)):
        level = getattr(criterion, field)
        if level is not None and level not in _levels(which):
            problems.append((path + (field,), f"{field} {level:g} is not a level of run '{which.id}' (its levels: "
                                              f"{', '.join(f'{v:g}' for v in _levels(which))})"))
    return problems
