"""Run kind `scaling`: the ladder's Phase-2/3 results, read (never recomputed) and fitted against model size."""

from __future__ import annotations

from esa.compile.plan import Plan
from esa.compile.shared import results_dir
from esa.grading import scaling_criteria
from esa.grading.scaling_analysis import analyze_scaling_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.scaling_runs import ScalingRun, ladder_runs

SCORE_FILES = ("summary.json", "tensor_stats.parquet", "topk.parquet", "superweight.json", "scores")


def build_scaling(plan: Plan, spec: Spec, run: ScalingRun, specs: dict[str, Spec]) -> list[str]:
    """No stage of its own: the grade stage reads the score and perturb stages' outputs of every ladder model (they
    are its deps, so a changed score re-fits the ladder). The named runs add their own stages."""
    evidence = []
    for _, score_run, perturb_run in ladder_runs(spec, run):
        for seed in score_run.seeds:
            folder = f"{results_dir(spec, score_run.id)}/seed{seed}"
            evidence.extend(f"{folder}/{name}" for name in SCORE_FILES)
        if perturb_run is not None:
            evidence.extend(f"{results_dir(spec, perturb_run.id)}/seed{seed}/summary.json"
                            for seed in perturb_run.seeds)
    return evidence


KIND = RunKind("scaling", ScalingRun, build_scaling, analyze_scaling_runs, ("analysis.json", "scaling.parquet"),
               scaling_criteria)
