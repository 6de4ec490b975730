"""Run kind `score`: sensitivity scores and top-k selections per seed (Phase 2), analysed across seeds."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import comparison_criteria, score_criteria
from esa.grading.score_analysis import analyze_score_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.runs import ScoreRun



def build_score(plan: Plan, spec: Spec, run: ScoreRun, specs: dict[str, Spec]) -> list[str]:
    """One scoring stage per seed (the seed draws calibration windows and probes); all metrics in one stage."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
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
                deps=(*code_deps("stages/score.py", root=plan.root), data, *model_deps),
                params=(key,),
                outs=(*(f"{out}/{name}" for name in files), f"{out}/scores", f"{out}/summary.json"),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/topk.parquet", f"{out}/tensor_stats.parquet",
                         f"{out}/sampling.json"])
    return evidence


REGISTERED = (comparison_criteria,)  # importing it registers stability_difference's evaluator
KIND = RunKind("score", ScoreRun, build_score, analyze_score_runs, ("analysis.json", "stability_vs_k.parquet"),
               score_criteria)
