"""Run kind `interpret`: super weights and the massive activations they drive, critical weights per attention
head, and cloze probes under critical-weight ablation."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import interpret_criteria
from esa.grading.interpret_analysis import analyze_interpret_runs
from esa.kinds.base import RunKind
from esa.kinds.saved_scores import paired_seeds
from esa.spec import Spec
from esa.spec.interpret_runs import InterpretRun

PROGRAM = "stages/interpret.py"
OUTS = ("activations.parquet", "windows.parquet", "heads.parquet", "probes.parquet", "summary.json")


def build_interpret(plan: Plan, spec: Spec, run: InterpretRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads the critical set of scoring seed i and evaluates on its own part of the
    evaluation split."""
    source = specs[run.critical.spec]
    critical_run = source.run(run.critical.run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved(), "critical_seeds": paired_seeds(run.seeds, critical_run.seeds)}
    evidence = []
    for seed, critical_seed in zip(run.seeds, params["critical_seeds"]):
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        critical = f"{results_dir(source, critical_run.id)}/seed{critical_seed}"
        outs = [f"{out}/{name}" for name in OUTS]
        plan.add(StageNode(
            name=f"interpret.{spec.name}/{run.id}/seed{seed}",
            cmd=f"python {PROGRAM} --key {key} --seed {seed} --critical {critical} --spec {spec.source} --out {out}",
            deps=(*code_deps(PROGRAM, root=plan.root), data, *model_deps, f"{critical}/topk.parquet"),
            params=(key,),
            outs=(*outs, f"{out}/manifest.json"),
        ), {key: params})
        evidence.extend(outs)
    return evidence


KIND = RunKind("interpret", InterpretRun, build_interpret, analyze_interpret_runs,
               ("analysis.json", "superweights.parquet", "head_critical.parquet", "probe_accuracy.parquet"),
               interpret_criteria)
