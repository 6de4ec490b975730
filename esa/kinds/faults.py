"""Run kind `faults`: random bit errors at a sweep of rates (with the critical set protected or not) and a
progressive bit-flip attack, in fp32, bf16 or int8 storage."""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import fault_criteria
from esa.grading.fault_analysis import analyze_fault_runs
from esa.kinds.base import RunKind
from esa.kinds.saved_scores import paired_seeds
from esa.spec import Spec
from esa.spec.fault_runs import FaultRun

PROGRAM = "stages/faults.py"


def build_faults(plan: Plan, spec: Spec, run: FaultRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: seed i reads the critical set of scoring seed i, draws its own errors and attacks with
    its own part of the calibration split."""
    source = specs[run.critical.spec]
    critical_run = source.run(run.critical.run)
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved(), "critical_seeds": paired_seeds(run.seeds, critical_run.seeds)}
    evidence = []
    for part, (seed, critical_seed) in enumerate(zip(run.seeds, params["critical_seeds"])):
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        critical = f"{results_dir(source, critical_run.id)}/seed{critical_seed}"
        outs = [f"{out}/trials.parquet", f"{out}/summary.json", f"{out}/manifest.json"]
        if run.attack is not None:
            outs.insert(1, f"{out}/attack.parquet")
        plan.add(StageNode(
            name=f"faults.{spec.name}/{run.id}/seed{seed}",
            cmd=(f"python {PROGRAM} --key {key} --seed {seed} --part {part} --critical {critical} "
                 f"--spec {spec.source} --out {out}"),
            deps=(*code_deps(PROGRAM, root=plan.root), data, *model_deps, f"{critical}/topk.parquet"),
            params=(key,),
            outs=tuple(outs),
        ), {key: params})
        evidence.extend(o for o in outs if not o.endswith("manifest.json"))
    return evidence


KIND = RunKind("faults", FaultRun, build_faults, analyze_fault_runs, ("analysis.json", "faults.parquet",
                                                                      "attacks.parquet"), fault_criteria)
