"""Run kind `adapt`: train copies of a model on the shifted domain per arm; forgetting on the shared baseline's
windows, gain on held-out instruction pairs (Phase 5: protection and critical-only fine-tuning)."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import results_dir
from esa.grading import adapt_criteria
from esa.grading.adapt_analysis import analyze_adapt_runs
from esa.kinds.base import RunKind
from esa.kinds.saved_scores import saved_score_inputs
from esa.spec import Spec
from esa.spec.adapt_runs import AdaptRun

PROGRAM = "stages/adapt.py"


def build_adapt(plan: Plan, spec: Spec, run: AdaptRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads scoring seed i's saved scores and trains on part i of the pairs."""
    shared = saved_score_inputs(plan, spec, run, specs)
    evidence = [f"{shared.baseline}/sequences.parquet"]
    for seed, score_seed in zip(run.seeds, shared.params["score_seeds"]):
        scores = shared.score_folder(score_seed)
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        plan.add(StageNode(
            name=f"adapt.{spec.name}/{run.id}/seed{seed}",
            cmd=(f"python {PROGRAM} --key {shared.key} --seed {seed} --scores {scores} --baseline {shared.baseline} "
                 f"--spec {spec.source} --out {out}"),
            deps=(*code_deps(PROGRAM, root=plan.root), *shared.inputs,
                  *([f"{scores}/scores"] if run.saved_metrics() else [])),
            params=(shared.key,),
            outs=(f"{out}/conditions.parquet", f"{out}/domain.parquet", f"{out}/summary.json",
                  f"{out}/manifest.json"),
        ), {shared.key: shared.params})
        evidence.extend(f"{out}/{name}" for name in ("conditions.parquet", "domain.parquet", "summary.json"))
    return evidence


KIND = RunKind("adapt", AdaptRun, build_adapt, analyze_adapt_runs,
               ("analysis.json", "adaptation.parquet", "adaptation_curves.parquet"), adapt_criteria)
