"""What one run will do, as short phrases: its kind's settings with defaults and protocols resolved.

Each kind names the settings that decide its result; any other field the spec wrote is listed after them, so
nothing written is hidden.
"""

from __future__ import annotations

from esa.spec import Spec

COMMON = {"id", "kind", "description", "model", "data", "seeds", "dtype", "device"}


def _list(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _eval(run, spec: Spec) -> tuple[list[str], set[str]]:
    r = run.resolved()
    return ([f"protocol {r['protocol']}: context {r['context']}, stride {r['stride']}, {r['max_windows']} windows, "
             f"batch {r['batch_size']}"],
            {"protocol", "context", "stride", "max_windows", "batch_size", "split"})


def _score(run, spec: Spec) -> tuple[list[str], set[str]]:
    phrases = [f"metrics {_list(run.metrics)}", f"modes {_list(run.modes)}", f"topk {run.topk}",
               f"k_grid {_list(run.ks())}", f"{run.max_windows} calibration windows × {run.context} tokens"]
    if "hutchinson_diag" in run.metrics:
        phrases.append(f"{run.probes} Hutchinson probes × {run.hutchinson_windows} windows ({run.hutchinson_mode})")
    phrases.append(f"microbatch {run.microbatch}, accum_dtype {run.resolved()['accum_dtype']}")
    return phrases, {"metrics", "modes", "topk", "k_grid", "max_windows", "context", "probes", "hutchinson_windows",
                     "hutchinson_mode", "split", "microbatch", "accum_dtype"}


def _ablation(run, spec: Spec) -> tuple[list[str], set[str]]:
    r = run.resolved_with(spec.run(run.scores))
    return ([f"checks score run {run.scores}: metrics {_list(r['metrics'])}, rank by {r['rank_by']}",
             f"zeroes the top {run.top} and {run.n_random} random weights", f"{run.eval_windows} eval windows × "
             f"{run.context} tokens"], {"scores", "metrics", "rank_by", "top", "n_random", "eval_windows", "context"})


def _perturb(run, spec: Spec) -> tuple[list[str], set[str]]:
    ref = run.scores
    seed = f", scoring seed {ref.seed} for all" if ref.seed is not None else ", scoring seed by position"
    r = run.resolved()
    levels = f"level{'s' if len(r['levels']) > 1 else ''} {_list(r['levels'])}"
    return ([f"{run.perturbation} at {levels}", f"controls {_list(run.controls) or 'none'}",
             f"super set: {ref.spec} {ref.run} {ref.metric} {ref.mode} top-{ref.k}{seed}",
             f"protocol {run.protocol}: context {r['context']}, {r['max_windows']} windows, eval fold "
             f"{run.eval_fold} of {run.eval_folds} (window seed {run.eval_seed})"],
            {"perturbation", "scale", "levels", "controls", "scores", "protocol", "eval_fold", "eval_folds",
             "eval_seed"})


def _members(spec: Spec, name: str, kind: str) -> str:
    from esa.spec.scaling_runs import runs_named

    runs = runs_named(spec, name, kind)
    return f"{name} ({len(runs)} {kind} run{'s' if len(runs) != 1 else ''})"


def _scaling(run, spec: Spec) -> tuple[list[str], set[str]]:
    models = run.models or [r.model for r in _named(spec, run.scores)]
    return ([f"ladder of {len(models)}: {_list(models)}", f"N = {run.size.replace('_', '-')} parameters",
             f"reads {_members(spec, run.scores, 'score')}"
             + (f" and {_members(spec, run.perturb, 'perturb')} ({run.control} control)" if run.perturb else ""),
             f"{run.metric}: critical multiple {run.critical_multiple:g}, top-{run.k} {run.mode}"],
            {"scores", "perturb", "models", "metric", "mode", "k", "critical_multiple", "control", "size"})


def _architecture(run, spec: Spec) -> tuple[list[str], set[str]]:
    models = run.models or [r.model for r in _named(spec, run.scores)]
    shifts = [f"{name}: {base} → {tuned}" for name, (base, tuned) in run.shifts.items()]
    return ([f"compares {_list(models)} on {run.metric}", f"reads {_members(spec, run.scores, 'score')}",
             *([f"shifts {'; '.join(shifts)}"] if shifts else [])], {"scores", "models", "metric", "shifts"})


def _named(spec: Spec, name: str) -> list:
    from esa.spec.scaling_runs import runs_named

    return runs_named(spec, name, "score")


SUMMARIES = {"eval": _eval, "score": _score, "ablation_check": _ablation, "perturb": _perturb, "scaling": _scaling,
             "architecture": _architecture}


def run_phrases(run, spec: Spec) -> tuple[list[str], list[str]]:
    """(heading, phrases): kind, model on data, seeds, dtype and device; then the settings that decide the result."""
    heading = ([run.kind, f"{run.model} on {run.data}", f"seeds {_list(run.seeds)}", f"{run.dtype} {run.device}"]
               if hasattr(run, "model") else [run.kind, "reads other runs' results"])
    summary = SUMMARIES.get(run.kind)
    phrases, shown = summary(run, spec) if summary else ([], set())
    written = sorted(run.model_fields_set - COMMON - shown)
    phrases += [f"{name} {value_text(getattr(run, name))}" for name in written]
    return heading, phrases


def value_text(value) -> str:
    """A field value as a phrase: lists comma-separated, floats without trailing zeros."""
    if isinstance(value, bool):
        return str(value).lower()  # as YAML writes it
    if isinstance(value, list):
        return _list(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
