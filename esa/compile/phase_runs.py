"""Stage builders per run kind (a small registry), plus the grade stage every phase ends with."""

from __future__ import annotations

from typing import Callable

from esa.compile.plan import Plan, PlanError, StageNode
from esa.compile.shared import add_corpus, add_model
from esa.notebook.lock import lock_path
from esa.spec import Spec
from esa.spec.runs import AblationRun, EvalRun, PerturbRun, ScoreRun
from esa.spec.sweeps import slug

EVAL_CODE = ("stages/evaluate.py", "esa/engine/evaluate.py", "esa/engine/windows.py", "esa/engine/models.py",
             "esa/stageio.py")
SCORE_CODE = ("stages/score.py", "esa/engine/scoring.py", "esa/engine/batches.py", "esa/engine/gradient_pass.py",
              "esa/engine/metrics.py", "esa/engine/hutchinson.py",
              "esa/engine/superweight.py", "esa/engine/targets.py", "esa/engine/select.py",
              "esa/engine/score_stats.py", "esa/engine/windows.py", "esa/engine/models.py", "esa/stageio.py")
# Grading reads evaluators, analyses and statistics across these packages: depend on all of them, so an edited
# grader always re-grades (a hand-kept file list went stale).
GRADE_CODE = ("esa/report", "esa/analysis", "esa/spec", "esa/notebook", "esa/stageio.py")
# What each phase's grade stage writes besides grades.json (its analyses, read by the report).
PHASE_OUTPUTS = {1: ("summary.json",), 2: ("analysis.json", "stability_vs_k.parquet"),
                 3: ("analysis.json", "conditions.parquet")}


def results_dir(spec: Spec, run_id: str) -> str:
    return f"results/{spec.name}/{run_id}"


def build_eval(plan: Plan, spec: Spec, run: EvalRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed (the seed picks the evaluation windows); returns the metrics files for grading."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, **run.resolved()}
    metrics = []
    for seed in run.seeds:
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        plan.add(
            StageNode(
                name=f"eval.{spec.name}/{run.id}/seed{seed}",
                cmd=(f"python stages/evaluate.py --key {key} --seed {seed} --spec {spec.source} --out {out}"),
                deps=(*EVAL_CODE, data, *model_deps),
                params=(key,),
                outs=(f"{out}/sequences.parquet", f"{out}/sampling.json", f"{out}/manifest.json"),
                metrics=(f"{out}/metrics.json",),
            ),
            {key: params},
        )
        metrics.extend([f"{out}/metrics.json", f"{out}/sampling.json", f"{out}/sequences.parquet"])
    return metrics


def build_score(plan: Plan, spec: Spec, run: ScoreRun, specs: dict[str, Spec]) -> list[str]:
    """One scoring stage per seed (the seed draws calibration windows and probes); all metrics in one stage."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, **run.resolved()}
    evidence = []
    for seed in run.seeds:
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        files = ("topk.parquet", "bottomk.parquet", "tensor_stats.parquet", "layer_component.parquet",
                 "superweight.json", "sampling.json", "manifest.json")
        plan.add(
            StageNode(
                name=f"score.{spec.name}/{run.id}/seed{seed}",
                cmd=f"python stages/score.py --key {key} --seed {seed} --spec {spec.source} --out {out}",
                deps=(*SCORE_CODE, data, *model_deps),
                params=(key,),
                outs=(*(f"{out}/{name}" for name in files), f"{out}/scores"),
                metrics=(f"{out}/summary.json",),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/topk.parquet", f"{out}/tensor_stats.parquet",
                         f"{out}/sampling.json"])
    return evidence


ABLATION_CODE = ("stages/ablation.py", "esa/engine/ablation.py", "esa/engine/scoring.py", "esa/engine/batches.py",
                 "esa/engine/gradient_pass.py", "esa/engine/windows.py", "esa/engine/models.py", "esa/stageio.py")


def build_ablation(plan: Plan, spec: Spec, run: AblationRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed, reading that seed's saved scores from the score run's stage."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, "dtype": run.dtype,
              "device": run.device, **run.resolved_with(spec.run(run.scores))}
    evidence = []
    for seed in run.seeds:
        scores = f"{results_dir(spec, run.scores)}/seed{seed}"
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        plan.add(
            StageNode(
                name=f"ablation.{spec.name}/{run.id}/seed{seed}",
                cmd=(f"python stages/ablation.py --key {key} --seed {seed} --scores {scores} --spec {spec.source} "
                     f"--out {out}"),
                deps=(*ABLATION_CODE, data, *model_deps, f"{scores}/scores", f"{scores}/topk.parquet"),
                params=(key,),
                outs=(f"{out}/ablation.parquet", f"{out}/transfer.parquet", f"{out}/sampling.json",
                      f"{out}/manifest.json"),
                metrics=(f"{out}/summary.json",),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/transfer.parquet"])
    return evidence


PERTURB_CODE = ("stages/perturb.py", "esa/engine/perturb.py", "esa/engine/perturbations.py", "esa/engine/bitflip.py",
                "esa/engine/controls.py", "esa/engine/checksum.py", "esa/engine/batches.py",  # grad_step's windows
                "esa/engine/evaluate.py", "esa/engine/windows.py", "esa/engine/models.py", "esa/stageio.py")


def add_baseline(plan: Plan, run: PerturbRun) -> str:
    """The unperturbed evaluation every perturbation of this model, data and window sample is paired with.

    Keyed by what determines it (model, data, protocol, part of the evaluation pool, window seed), so any number
    of runs share one stage.
    """
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    part = f"fold{run.eval_fold}of{run.eval_folds}-seed{run.eval_seed}"
    name = f"{slug(run.model)}/{run.data}/{run.protocol}-{run.dtype}/{part}"
    key = f"baselines.{slug(run.model)}-{run.data}-{run.protocol}-{run.dtype}-{part}"
    out = run.baseline_dir()
    plan.add(
        StageNode(
            name=f"baseline.{name}",
            cmd=f"python stages/evaluate.py --key {key} --seed {run.eval_seed} --out {out}",
            deps=(*EVAL_CODE, data, *model_deps),
            params=(key,),
            outs=(f"{out}/sequences.parquet", f"{out}/sampling.json", f"{out}/manifest.json"),
            metrics=(f"{out}/metrics.json",),
        ),
        {key: {"model": model_location, "model_name": run.model, "data": data, **run.evaluation()}},
    )
    return out


def build_perturb(plan: Plan, spec: Spec, run: PerturbRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: super set + controls, every level, each evaluated on the baseline's windows.

    Seed i reads the super set of scoring seed i (so seeds resample the super set as well as the controls),
    unless the spec names one scoring seed for all.
    """
    source = specs[run.scores.spec]
    score_run = source.run(run.scores.run)
    score_seeds = score_seeds_of(run, score_run)
    baseline = add_baseline(plan, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, **run.resolved(),
              "scores": run.scores.model_dump(), "score_seeds": score_seeds}
    evidence = []
    for seed, score_seed in zip(run.seeds, score_seeds):
        scores = f"{results_dir(source, score_run.id)}/seed{score_seed}"
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        plan.add(
            StageNode(
                name=f"perturb.{spec.name}/{run.id}/seed{seed}",
                cmd=(f"python stages/perturb.py --key {key} --seed {seed} --scores {scores} --baseline {baseline} "
                     f"--spec {spec.source} --out {out}"),
                deps=(*PERTURB_CODE, data, *model_deps, f"{scores}/topk.parquet", f"{scores}/bottomk.parquet",
                      f"{baseline}/sequences.parquet"),
                params=(key,),
                outs=(f"{out}/conditions.parquet", f"{out}/manifest.json"),
                metrics=(f"{out}/summary.json",),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/conditions.parquet"])
    return evidence + [f"{baseline}/sequences.parquet"]


def score_seeds_of(run: PerturbRun, score_run: ScoreRun) -> list[int]:
    """The scoring seed each perturbation seed reads its super set from (by position, or the one named)."""
    if run.scores.seed is not None:
        if run.scores.seed not in score_run.seeds:
            raise PlanError(f"run '{run.id}': scores.seed {run.scores.seed} is not a seed of score run "
                            f"'{score_run.id}' (its seeds: {', '.join(map(str, score_run.seeds))})")
        return [run.scores.seed] * len(run.seeds)
    if len(run.seeds) > len(score_run.seeds):
        raise PlanError(f"run '{run.id}': {len(run.seeds)} seeds but score run '{score_run.id}' has only "
                        f"{len(score_run.seeds)}; each perturbation seed reads the super set of its own scoring "
                        "seed (or set scores.seed to share one)")
    return list(score_run.seeds[: len(run.seeds)])


RUN_BUILDERS: dict[str, Callable[[Plan, Spec, object, dict], list[str]]] = {
    "eval": build_eval, "score": build_score, "ablation_check": build_ablation, "perturb": build_perturb}


def add_spec(plan: Plan, spec: Spec, specs: dict[str, Spec], locked: bool = False) -> None:
    """All stages of one spec: its runs, then the grade stage reading their results.

    The grade stage also reads the phase's run manifests (for the research log) and, once the spec is
    locked, its pre-registration lock file.
    """
    evidence: list[str] = []
    for run in spec.runs:
        evidence.extend(RUN_BUILDERS[run.kind](plan, spec, run, specs))
    own = f"results/{spec.name}/"
    manifests = sorted({f"{path.rsplit('/', 1)[0]}/manifest.json" for path in evidence if path.startswith(own)})
    evidence.extend(manifests)
    if locked:
        evidence.append(lock_path(spec.source).as_posix())
    plan.add(
        StageNode(
            name=f"grade.{spec.name}",
            cmd=f"esa grade {spec.source} --quiet",
            deps=(spec.source, *GRADE_CODE, *evidence),
            outs=tuple(f"results/{spec.name}/{name}" for name in PHASE_OUTPUTS.get(spec.phase, ())),
            metrics=(f"results/{spec.name}/grades.json",),
        )
    )
