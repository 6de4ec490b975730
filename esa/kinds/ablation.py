"""Run kind `ablation_check`: does a metric's score predict the damage of ablating single weights?"""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import score_criteria
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.runs import AblationRun



def build_ablation(plan: Plan, spec: Spec, run: AblationRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed, reading that seed's saved scores from the score run's stage."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
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
                deps=(*code_deps("stages/ablation.py", root=plan.root), data, *model_deps, f"{scores}/scores", f"{scores}/topk.parquet"),
                params=(key,),
                outs=(f"{out}/ablation.parquet", f"{out}/transfer.parquet", f"{out}/sampling.json",
                      f"{out}/manifest.json", f"{out}/summary.json"),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/transfer.parquet"])
    return evidence


# Its criterion (ablation_spearman) reads the stages' summaries directly: no grade-stage analysis.
KIND = RunKind("ablation_check", AblationRun, build_ablation, None, (), score_criteria)
