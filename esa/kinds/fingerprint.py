"""Run kind `fingerprint`: siblings of one base model, half fine-tuned with a planted backdoor; does the
sensitivity map tell them apart?"""

from __future__ import annotations

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import fingerprint_criteria
from esa.grading.fingerprint_analysis import analyze_fingerprint_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.fingerprint_runs import FingerprintRun

PROGRAM = "stages/fingerprint.py"
OUTS = ("siblings.parquet", "profiles.parquet", "summary.json")


def build_fingerprint(plan: Plan, spec: Spec, run: FingerprintRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed: each seed fine-tunes its own set of siblings from the same base model."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, **run.load_settings(), "data": data,
              **run.resolved()}
    evidence = []
    for seed in run.seeds:
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        outs = [f"{out}/{name}" for name in OUTS]
        plan.add(StageNode(
            name=f"fingerprint.{spec.name}/{run.id}/seed{seed}",
            cmd=f"python {PROGRAM} --key {key} --seed {seed} --spec {spec.source} --out {out}",
            deps=(*code_deps(PROGRAM, root=plan.root), data, *model_deps),
            params=(key,),
            outs=(*outs, f"{out}/manifest.json"),
        ), {key: params})
        evidence.extend(outs)
    return evidence


KIND = RunKind("fingerprint", FingerprintRun, build_fingerprint, analyze_fingerprint_runs,
               ("analysis.json", "fingerprint.parquet"), fingerprint_criteria)
