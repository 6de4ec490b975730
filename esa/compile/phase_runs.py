"""Stage builders per run kind (a small registry), plus the grade stage every phase ends with."""

from __future__ import annotations

from typing import Callable

from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model
from esa.spec import Spec
from esa.spec.runs import AblationRun, EvalRun, ScoreRun

EVAL_CODE = ("stages/evaluate.py", "esa/engine/evaluate.py", "esa/engine/windows.py", "esa/engine/models.py")
SCORE_CODE = ("stages/score.py", "esa/engine/scoring.py", "esa/engine/metrics.py", "esa/engine/hutchinson.py",
              "esa/engine/superweight.py", "esa/engine/targets.py", "esa/engine/select.py",
              "esa/engine/score_stats.py", "esa/engine/windows.py", "esa/engine/models.py")
GRADE_CODE = ("esa/report/grade.py", "esa/report/evidence.py", "esa/spec/criteria.py")
# What each phase's grade stage writes besides grades.json (its analyses, read by the report).
PHASE_OUTPUTS = {1: ("summary.json",), 2: ("analysis.json", "stability_vs_k.parquet")}


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


def build_score(plan: Plan, spec: Spec, run: ScoreRun) -> list[str]:
    """One scoring stage per seed (the seed draws calibration windows and probes); all metrics in one stage."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, **run.resolved()}
    evidence = []
    for seed in run.seeds:
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        files = ("topk.parquet", "bottomk.parquet", "tensor_stats.parquet", "layer_component.parquet",
                 "superweight.json", "manifest.json")
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
        evidence.extend([f"{out}/summary.json", f"{out}/topk.parquet", f"{out}/tensor_stats.parquet"])
    return evidence


ABLATION_CODE = ("stages/ablation.py", "esa/engine/ablation.py", "esa/engine/scoring.py", "esa/engine/windows.py",
                 "esa/engine/models.py")


def build_ablation(plan: Plan, spec: Spec, run: AblationRun) -> list[str]:
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
                outs=(f"{out}/ablation.parquet", f"{out}/transfer.parquet", f"{out}/manifest.json"),
                metrics=(f"{out}/summary.json",),
            ),
            {key: params},
        )
        evidence.extend([f"{out}/summary.json", f"{out}/transfer.parquet"])
    return evidence


RUN_BUILDERS: dict[str, Callable[[Plan, Spec, object], list[str]]] = {
    "eval": build_eval, "score": build_score, "ablation_check": build_ablation}


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
            outs=tuple(f"results/{spec.name}/{name}" for name in PHASE_OUTPUTS.get(spec.phase, ())),
            metrics=(f"results/{spec.name}/grades.json",),
        )
    )
