"""Run kind `adapt`: train copies of a model on the shifted domain per arm; forgetting on the shared baseline's
windows, gain on held-out instruction pairs (Phase 5: protection and critical-only fine-tuning)."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.references import score_run_of
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import adapt_criteria
from esa.grading.adapt_analysis import analyze_adapt_runs
from esa.kinds.base import RunKind
from esa.kinds.perturb import add_baseline
from esa.kinds.prune import paired_seeds
from esa.spec import Spec
from esa.spec.adapt_runs import AdaptRun

PROGRAM = "stages/adapt.py"


def build_adapt(plan: Plan, spec: Spec, run: AdaptRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads scoring seed i's saved scores and trains on part i of the pairs."""
    source = specs[run.scores.spec]
    score_run = score_run_of(source, run)
    baseline = add_baseline(plan, spec, run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    score_seeds = paired_seeds(run.seeds, score_run.seeds)
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved(), "scores": run.scores.model_dump(), "score_seeds": score_seeds}
    evidence = [f"{baseline}/sequences.parquet"]
    for seed, score_seed in zip(run.seeds, score_seeds):
        scores = f"{results_dir(source, score_run.id)}/seed{score_seed}"
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        inputs = [data, *model_deps, f"{baseline}/sequences.parquet"]
        if run.saved_metrics():
            inputs.append(f"{scores}/scores")
        plan.add(StageNode(
            name=f"adapt.{spec.name}/{run.id}/seed{seed}",
            cmd=(f"python {PROGRAM} --key {key} --seed {seed} --scores {scores} --baseline {baseline} "
                 f"--spec {spec.source} --out {out}"),
            deps=(*code_deps(PROGRAM, root=plan.root), *inputs),
            params=(key,),
            outs=(f"{out}/conditions.parquet", f"{out}/domain.parquet", f"{out}/summary.json",
                  f"{out}/manifest.json"),
        ), {key: params})
        evidence.extend(f"{out}/{name}" for name in ("conditions.parquet", "domain.parquet", "summary.json"))
    return evidence


KIND = RunKind("adapt", AdaptRun, build_adapt, analyze_adapt_runs,
               ("analysis.json", "adaptation.parquet", "adaptation_curves.parquet"), adapt_criteria)
