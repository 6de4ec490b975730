"""Run kind `perturb`: perturb a Phase-2 super set and matched controls, paired with a shared baseline (Phase 3)."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, PlanError, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import comparison_criteria, known_answer_criteria, perturb_criteria
from esa.grading.perturb_analysis import analyze_perturb_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.runs import PerturbRun, ScoreRun
from esa.spec.sweeps import slug



def add_baseline(plan: Plan, spec: Spec, run: PerturbRun) -> str:
    """The unperturbed evaluation every perturbation of this model, data and window sample is paired with.

    Keyed by what determines it (model, data, protocol, part of the evaluation pool, window seed), so any number
    of runs share one stage.
    """
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    part = f"fold{run.eval_fold}of{run.eval_folds}-seed{run.eval_seed}"
    name = f"{slug(run.model)}/{run.data}/{run.protocol}-{run.dtype}/{part}"
    key = f"baselines.{slug(run.model)}-{run.data}-{run.protocol}-{run.dtype}-{part}"
    out = run.baseline_dir()
    plan.add(
        StageNode(
            name=f"baseline.{name}",
            cmd=f"python stages/evaluate.py --key {key} --seed {run.eval_seed} --out {out}",
            deps=(*code_deps("stages/evaluate.py", root=plan.root), data, *model_deps),
            params=(key,),
            outs=(f"{out}/sequences.parquet", f"{out}/sampling.json", f"{out}/manifest.json", f"{out}/metrics.json"),
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
    baseline = add_baseline(plan, spec, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
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
                deps=(*code_deps("stages/perturb.py", root=plan.root), data, *model_deps, f"{scores}/topk.parquet", f"{scores}/bottomk.parquet",
                      f"{baseline}/sequences.parquet"),
                params=(key,),
                outs=(f"{out}/conditions.parquet", f"{out}/manifest.json", f"{out}/summary.json"),
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


# Evaluator modules beside the kind's own graders: importing them registers their criteria.
REGISTERED = (comparison_criteria, known_answer_criteria)
KIND = RunKind("perturb", PerturbRun, build_perturb, analyze_perturb_runs, ("analysis.json", "conditions.parquet"),
               perturb_criteria)
