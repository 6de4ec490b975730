"""The LoRA arm: low-rank adapters (``peft``) on a copy of the model, trained by the same ``adapt`` loop.

``get_peft_model`` turns off the gradient of every base weight, so ``adapt`` (which trains only parameters that
require grad) counts and updates the adapter weights alone. By default the adapters sit on every linear layer
whose weight is a scored matrix, the same matrices the critical-weight arms choose from.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch

from esa.engine.models.targets import scored_parameters


def _peft():
    try:
        import peft
    except ImportError as err:  # an optional dependency of this arm only
        raise ImportError("the LoRA arm needs peft: pip install peft") from err
    return peft


def lora_targets(model: torch.nn.Module) -> list[str]:
    """Full names of the ``nn.Linear`` modules whose weight is a scored matrix, in module order."""
    scored = {t.name for t in scored_parameters(model)}
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and f"{name}.weight" in scored]


def lora_model(model: torch.nn.Module, rank: int = 8, alpha: float = 16.0,
               target_modules: Sequence[str] | None = None, dropout: float = 0.0) -> torch.nn.Module:
    """A ``peft`` LoRA model wrapping a deep copy of ``model`` (which stays untouched); only adapters train.

    ``target_modules``: module names or name suffixes (peft's matching); default ``lora_targets(model)``.
    """
    peft = _peft()
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    modules = list(target_modules) if target_modules is not None else lora_targets(model)
    if not modules:
        raise ValueError("no module to put LoRA adapters on")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, bias="none")
    return peft.get_peft_model(copy.deepcopy(model), config)


def lora_parameter_count(model: torch.nn.Module) -> int:
    """Entries of the LoRA adapter weights of a ``lora_model``."""
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model with the adapters folded into its weights, for evaluation. Consumes ``model`` (peft merges
    in place); pass a copy to keep the adapters."""
    _peft()
    return model.merge_and_unload()


__all__ = ["lora_model", "lora_parameter_count", "lora_targets", "merged"]
