"""Run kind `prune`: masks from Phase-2 scores at a sweep of sparsities, evaluated on the shared Phase-3 baseline."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import results_dir
from esa.grading import prune_criteria
from esa.grading.prune_analysis import analyze_prune_runs
from esa.kinds.base import RunKind
from esa.kinds.saved_scores import paired_seeds, saved_score_inputs
from esa.spec import Spec
from esa.spec.prune_runs import PruneRun

PROGRAM = "stages/prune.py"


def build_prune(plan: Plan, spec: Spec, run: PruneRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads the saved scores of scoring seed i and evaluates on the baseline's windows."""
    shared = saved_score_inputs(plan, spec, run, specs)
    protect_run = shared.source.run(run.protect.run) if run.protect is not None else None
    protect_seeds = paired_seeds(run.seeds, protect_run.seeds) if protect_run is not None else [None] * len(run.seeds)
    evidence = [f"{shared.baseline}/sequences.parquet"]
    for seed, score_seed, protect_seed in zip(run.seeds, shared.params["score_seeds"], protect_seeds):
        scores = shared.score_folder(score_seed)
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        inputs = [*shared.inputs, *([f"{scores}/scores"] if run.saved_metrics() else [])]
        protect = ""
        if protect_run is not None:
            folder = f"{results_dir(shared.source, protect_run.id)}/seed{protect_seed}"
            protect = f" --protect {folder}"
            inputs.append(f"{folder}/topk.parquet")
        plan.add(StageNode(
            name=f"prune.{spec.name}/{run.id}/seed{seed}",
            cmd=(f"python {PROGRAM} --key {shared.key} --seed {seed} --scores {scores} --baseline {shared.baseline}"
                 f"{protect} --spec {spec.source} --out {out}"),
            deps=(*code_deps(PROGRAM, root=plan.root), *dict.fromkeys(inputs)),
            params=(shared.key,),
            outs=(f"{out}/conditions.parquet", f"{out}/sparsity.parquet", f"{out}/summary.json",
                  f"{out}/manifest.json"),
        ), {shared.key: shared.params})
        evidence.extend([f"{out}/conditions.parquet", f"{out}/summary.json", f"{out}/sparsity.parquet"])
    return evidence


KIND = RunKind("prune", PruneRun, build_prune, analyze_prune_runs, ("analysis.json", "pruning.parquet"),
               prune_criteria)
