"""Run kind `architecture`: dense vs MoE vs instruction-tuned models compared on their Phase-2 scores (read, never
recomputed): component-group shares, depth profile, expert and router shares, base → instruct shift."""

from __future__ import annotations

from esa.compile.plan import Plan
from esa.compile.shared import results_dir
from esa.grading import architecture_criteria
from esa.grading.architecture_analysis import FILES, analyze_architecture_runs
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.architecture_runs import ArchitectureRun, architecture_models


def build_architecture(plan: Plan, spec: Spec, run: ArchitectureRun, specs: dict[str, Spec]) -> list[str]:
    """No stage of its own: the grade stage reads the compared models' score outputs (its deps)."""
    return [f"{results_dir(spec, score_run.id)}/seed{seed}/{name}"
            for _, score_run in architecture_models(spec, run) for seed in score_run.seeds for name in FILES]


KIND = RunKind("architecture", ArchitectureRun, build_architecture, analyze_architecture_runs,
               ("analysis.json", "architecture_layers.parquet"), architecture_criteria)
