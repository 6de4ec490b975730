"""Run kind `eval`: evaluate a model on document-disjoint windows per seed (Phase 1's baselines)."""

from __future__ import annotations

from pathlib import Path

from esa.compile.code_deps import code_deps
from esa.compile.plan import Plan, StageNode
from esa.compile.shared import add_corpus, add_model, results_dir
from esa.grading import eval_criteria
from esa.grading.evidence import load_eval_evidence, summarize
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.runs import EvalRun
from esa.stageio import write_json



def build_eval(plan: Plan, spec: Spec, run: EvalRun, specs: dict[str, Spec]) -> list[str]:
    """One stage per seed (the seed picks the evaluation windows); returns the metrics files for grading."""
    model_location, model_deps = add_model(plan, run.model)
    data = add_corpus(plan, run.data, spec)
    key = f"{spec.name}.{run.id}"
    params = {"model": model_location, "model_name": run.model, "data": data, **run.resolved()}
    metrics = []
    for seed in run.seeds:
        out = f"{results_dir(spec, run.id)}/seed{seed}"
        plan.add(
            StageNode(
                name=f"eval.{spec.name}/{run.id}/seed{seed}",
                cmd=(f"python stages/evaluate.py --key {key} --seed {seed} --spec {spec.source} --out {out}"),
                deps=(*code_deps("stages/evaluate.py", root=plan.root), data, *model_deps),
                params=(key,),
                outs=(f"{out}/sequences.parquet", f"{out}/sampling.json", f"{out}/manifest.json", f"{out}/metrics.json"),
            ),
            {key: params},
        )
        metrics.extend([f"{out}/metrics.json", f"{out}/sampling.json", f"{out}/sequences.parquet"])
    return metrics


def summarize_evals(spec: Spec, root: Path) -> dict:
    """The per-run table the report shows (summary.json); eval criteria read the stages' files, not this."""
    write_json(root / "results" / spec.name / "summary.json", summarize(load_eval_evidence(spec, root)))
    return {}


KIND = RunKind("eval", EvalRun, build_eval, summarize_evals, ("summary.json",), eval_criteria)
