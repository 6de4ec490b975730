"""Stage builders per run kind (a small registry), plus the grade stage every phase ends with."""

from __future__ import annotations

from typing import Callable

from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model
from esa.spec import Spec
from esa.spec.runs import EvalRun

EVAL_CODE = ("stages/evaluate.py", "esa/engine/evaluate.py", "esa/engine/windows.py", "esa/engine/models.py")
GRADE_CODE = ("esa/report/grade.py", "esa/spec/criteria.py")


def results_dir(spec: Spec, run_id: str) -> str:
    return f"results/{spec.name}/{run_id}"


def build_eval(plan: Plan, spec: Spec, run: EvalRun) -> list[str]:
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
                outs=(f"{out}/sequences.parquet", f"{out}/manifest.json"),
                metrics=(f"{out}/metrics.json",),
            ),
            {key: params},
        )
        metrics.append(f"{out}/metrics.json")
    return metrics


RUN_BUILDERS: dict[str, Callable[[Plan, Spec, object], list[str]]] = {"eval": build_eval}


def add_spec(plan: Plan, spec: Spec) -> None:
    """All stages of one spec: its runs, then the grade stage reading their metrics."""
    evidence: list[str] = []
    for run in spec.runs:
        evidence.extend(RUN_BUILDERS[run.kind](plan, spec, run))
    plan.add(
        StageNode(
            name=f"grade.{spec.name}",
            cmd=f"esa grade {spec.source} --quiet",
            deps=(spec.source, *GRADE_CODE, *evidence),
            outs=(f"results/{spec.name}/summary.json",),
            metrics=(f"results/{spec.name}/grades.json",),
        )
    )
