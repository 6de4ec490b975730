"""The score stage as a module (run in-process by the ``run_score`` fixture) and the metrics those runs score."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["grad_x_weight", "grad_squared", "act_mag"]


def score_stage():
    spec = importlib.util.spec_from_file_location("stages_score", ROOT / "stages/score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
