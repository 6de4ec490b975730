"""Loading a stage's model the way every model-reading stage does: quiet hub progress, the run's seed, its device,
and a bad model reported in one line (exit code 2) instead of a traceback."""

from __future__ import annotations

from typing import Any

import torch

from esa.engine.models.loading import StageModel, load_stage_model, quiet_hub_progress, resolve_device
from esa.stageio import bad_input


def stage_model(stage: str, params: dict[str, Any], seed: int) -> tuple[StageModel, torch.device] | int:
    """(the loaded model, its device), or the exit code after a one-line error naming ``stage``."""
    quiet_hub_progress()
    torch.manual_seed(seed)
    device = resolve_device(params.get("device", "cpu"))
    try:
        return load_stage_model(params, device=str(device)), device
    except (ValueError, OSError) as exc:
        return bad_input(stage, exc)


__all__ = ["stage_model"]
