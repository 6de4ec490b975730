"""Run kind `perturb`: perturb a Phase-2 super set and matched controls, paired with a shared baseline (Phase 3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, PlanError, StageNode
from esa.compile.references import score_run_of
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import comparison_criteria, known_answer_criteria, perturb_criteria
from esa.grading.perturb_analysis import analyze_perturb_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.runs import PerturbRun, ScoreRun
from esa.spec.sweeps import slug

PROGRAM = "stages/perturb.py"
SHARED_PROGRAM = "stages/perturb_group.py"


def add_baseline(plan: Plan, spec: Spec, run: PerturbRun) -> str:
    """The unperturbed evaluation every perturbation of this model, data and window sample is paired with.

    Keyed by what determines it (model, data, protocol, part of the evaluation pool, window seed), so any number
    of runs share one stage.
    """
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    part = f"fold{run.eval_fold}of{run.eval_folds}-seed{run.eval_seed}"
    name = f"{run.model_slug()}/{run.data}/{run.protocol}-{run.dtype}/{part}"
    key = f"baselines.{run.model_slug()}-{run.data}-{run.protocol}-{run.dtype}-{part}"
    out = run.baseline_dir()
    plan.add(
        StageNode(
            name=f"baseline.{name}",
            cmd=f"python stages/evaluate.py --key {key} --seed {run.eval_seed} --out {out}",
            deps=(*code_deps("stages/evaluate.py", root=plan.root), data, *model_deps),
            params=(key,),
            outs=(f"{out}/sequences.parquet", f"{out}/sampling.json", f"{out}/manifest.json", f"{out}/metrics.json"),
        ),
        {key: {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data, **run.evaluation()}},
    )
    return out


@dataclass(frozen=True)
class SeedWork:
    """What one (run, seed) of a perturb run reads and writes; a stage does one of these or a shared-load group's."""

    key: str  # the run's params
    seed: int
    scores: str  # the scoring stage's folder holding its super set
    baseline: str
    out: str
    inputs: tuple[str, ...]  # data, model, score files and baseline windows
    params: dict = field(compare=False, repr=False)  # the run's params, at ``key``

    def args(self) -> str:
        return f"--key {self.key} --seed {self.seed} --scores {self.scores} --baseline {self.baseline}"

    def outs(self) -> tuple[str, ...]:
        return (f"{self.out}/conditions.parquet", f"{self.out}/manifest.json", f"{self.out}/summary.json")


def seed_work(plan: Plan, spec: Spec, run: PerturbRun, specs: dict[str, Spec]) -> list[SeedWork]:
    """One entry per seed, with the run's params and its baseline stage added to the plan.

    Seed i reads the super set of scoring seed i (so seeds resample the super set as well as the controls),
    unless the spec names one scoring seed for all.
    """
    source = specs[run.scores.spec]
    score_run = score_run_of(source, run)
    score_seeds = score_seeds_of(run, score_run)
    baseline = add_baseline(plan, spec, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data, **run.resolved(),
              "scores": run.scores.model_dump(), "score_seeds": score_seeds}
    work = []
    for seed, score_seed in zip(run.seeds, score_seeds):
        scores = f"{results_dir(source, score_run.id)}/seed{score_seed}"
        work.append(SeedWork(key, seed, scores, baseline, f"{results_dir(spec, run.id)}/seed{seed}",
                             (data, *model_deps, f"{scores}/topk.parquet", f"{scores}/bottomk.parquet",
                              f"{baseline}/sequences.parquet"), params))
    return work


def build_perturb(plan: Plan, spec: Spec, run: PerturbRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed (super set + controls, every level, each evaluated on the baseline's windows), or with
    share_load one stage for every seed of the spec's runs that load the same model (add_shared_stage)."""
    if run.share_load:
        group = {member.id: seed_work(plan, spec, member, specs) for member in shared_group(spec, run)}
        add_shared_stage(plan, spec, run, [item for work in group.values() for item in work])
        work = group[run.id]
    else:
        work = seed_work(plan, spec, run, specs)
        for item in work:
            plan.add(StageNode(
                name=f"perturb.{spec.name}/{run.id}/seed{item.seed}",
                cmd=f"python {PROGRAM} {item.args()} --spec {spec.source} --out {item.out}",
                deps=(*code_deps(PROGRAM, root=plan.root), *item.inputs),
                params=(item.key,),
                outs=item.outs(),
            ), {item.key: item.params})
    evidence = [path for item in work for path in (f"{item.out}/summary.json", f"{item.out}/conditions.parquet")]
    return evidence + [f"{run.baseline_dir()}/sequences.parquet"]


# share_load: every seed of the spec's perturb runs that load the same model, in one stage. Loading an 8B model
# takes longer than perturbing it, so one load for runs × seeds saves most of the time; the price is coarser
# caching (the stage's params are all its members', so changing one member's re-runs the group). Members run in
# spec order, then seed order, and write the folders their own stages would.


def load_identity(run) -> tuple:
    """What decides the loaded model: runs equal in these can share one load."""
    return run.model, run.dtype, run.device, run.revision, run.trust_remote_code


def shared_group(spec: Spec, run) -> list:
    """The spec's share_load perturb runs that load the same model as ``run``, in spec order."""
    return [other for other in spec.runs if other.kind == "perturb" and other.share_load
            and load_identity(other) == load_identity(run)]


def shared_stage_name(spec: Spec, run) -> str:
    """perturb.<spec>/shared-<model>-<dtype>-<device>: one name per load identity (the model slug holds a pinned
    revision; remote code is marked)."""
    remote = "-remote-code" if run.trust_remote_code else ""
    return f"perturb.{spec.name}/shared-{run.model_slug()}-{slug(run.dtype)}-{run.device}{remote}"


def add_shared_stage(plan: Plan, spec: Spec, run, work: list) -> None:
    """The group's one stage: every member's inputs, params keys and outputs (each member's build adds the same
    node, which the plan keeps once)."""
    name = shared_stage_name(spec, run)
    members = " ".join(f"--member {item.key} {item.seed} {item.scores} {item.baseline} {item.out}" for item in work)
    inputs = [path for item in work for path in item.inputs]
    plan.add(
        StageNode(
            name=name,
            cmd=f"python {SHARED_PROGRAM} --stage {name} --spec {spec.source} {members}",
            deps=tuple(dict.fromkeys((*code_deps(SHARED_PROGRAM, root=plan.root), *inputs))),
            params=tuple(dict.fromkeys(item.key for item in work)),
            outs=tuple(path for item in work for path in item.outs()),
        ),
        {item.key: item.params for item in work},
    )


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
