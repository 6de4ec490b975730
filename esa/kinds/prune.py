"""Run kind `prune`: masks from Phase-2 scores at a sweep of sparsities, evaluated on the shared Phase-3 baseline."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.references import score_run_of
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import prune_criteria
from esa.grading.prune_analysis import analyze_prune_runs
from esa.kinds.base import RunKind
from esa.kinds.perturb import add_baseline
from esa.spec import Spec
from esa.spec.prune_runs import PruneRun

PROGRAM = "stages/prune.py"


def paired_seeds(run_seeds: list[int], source_seeds: list[int]) -> list[int]:
    """The source seed each of the run's seeds reads: the one at the same position when the source has as many,
    else the source's first (a data-free selection such as the super weights needs one seed)."""
    if len(source_seeds) >= len(run_seeds):
        return list(source_seeds[: len(run_seeds)])
    return [source_seeds[0]] * len(run_seeds)


def build_prune(plan: Plan, spec: Spec, run: PruneRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads the saved scores of scoring seed i and evaluates on the baseline's windows."""
    source = specs[run.scores.spec]
    score_run = score_run_of(source, run)
    baseline = add_baseline(plan, spec, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    score_seeds = paired_seeds(run.seeds, score_run.seeds)
    protect_run = source.run(run.protect.run) if run.protect is not None else None
    protect_seeds = paired_seeds(run.seeds, protect_run.seeds) if protect_run is not None else [None] * len(run.seeds)
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved(), "scores": run.scores.model_dump(), "score_seeds": score_seeds}
    evidence = [f"{baseline}/sequences.parquet"]
    for seed, score_seed, protect_seed in zip(run.seeds, score_seeds, protect_seeds):
        scores = f"{results_dir(source, score_run.id)}/seed{score_seed}"
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        inputs = [data, *model_deps, f"{baseline}/sequences.parquet"]
        if run.saved_metrics():
            inputs.append(f"{scores}/scores")
        protect = ""
        if protect_run is not None:
            folder = f"{results_dir(source, protect_run.id)}/seed{protect_seed}"
            protect = f" --protect {folder}"
            inputs.append(f"{folder}/topk.parquet")
        plan.add(StageNode(
            name=f"prune.{spec.name}/{run.id}/seed{seed}",
            cmd=(f"python {PROGRAM} --key {key} --seed {seed} --scores {scores} --baseline {baseline}{protect} "
                 f"--spec {spec.source} --out {out}"),
            deps=(*code_deps(PROGRAM, root=plan.root), *dict.fromkeys(inputs)),
            params=(key,),
            outs=(f"{out}/conditions.parquet", f"{out}/sparsity.parquet", f"{out}/summary.json",
                  f"{out}/manifest.json"),
        ), {key: params})
        evidence.extend([f"{out}/conditions.parquet", f"{out}/summary.json", f"{out}/sparsity.parquet"])
    return evidence


KIND = RunKind("prune", PruneRun, build_prune, analyze_prune_runs, ("analysis.json", "pruning.parquet"),
               prune_criteria)
