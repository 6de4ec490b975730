"""Protection by a penalty: a Fisher-weighted pull of the critical weights towards their starting values (EWC).

    penalty(θ) = λ/2 · Σ_{i selected} F̂_i (θ_i − θ0_i)²,   F̂_i = F_i / mean_{j selected} F_j

F is the empirical Fisher diagonal the scoring stage saves as ``grad_squared`` (mean squared gradient per
weight). Its absolute scale depends on the loss scale and on how the score run batched its sequences, so F is
divided by its mean over the selected entries: F̂ averages 1 there, and λ reads as the pull on a selected
weight of average Fisher, comparable across models and score runs. Its gradient is λ · F̂_i (θ_i − θ0_i) on the
selected entries and 0 everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from esa.engine.adaptation.selection import target_score
from esa.engine.models.targets import Target, scored_parameters


@dataclass(frozen=True)
class Penalty:
    """What to protect and how hard; ``adapt`` anchors it at the starting weights of the model it trains."""

    masks: Mapping[str, torch.Tensor]  # target key → bool, True = protected entry
    fisher: Mapping[str, torch.Tensor]  # parameter name → parameter-shaped grad_squared (load_saved_scores)
    strength: float  # λ

    def __post_init__(self) -> None:
        if isinstance(self.strength, bool) or not float(self.strength) >= 0:
            raise ValueError(f"penalty strength must be a number ≥ 0, got {self.strength!r}")


@dataclass(eq=False)
class _Term:
    target: Target
    mask: torch.Tensor  # 2-D bool on the parameter's device
    anchor: torch.Tensor  # θ0 of the selected entries (float32, 1-D)
    weight: torch.Tensor  # F̂ of the selected entries (float32, 1-D)


class FisherPenalty:
    """The penalty of one ``Penalty`` on one model, anchored at that model's weights when built.

    Calling it returns the scalar penalty as a function of the model's current parameters (differentiable).
    """

    def __init__(self, model: torch.nn.Module, spec: Penalty):
        targets = {t.key: t for t in scored_parameters(model)}
        unknown = sorted(set(spec.masks) - set(targets))
        if unknown:
            raise KeyError(f"penalty masks name matrices that are not scored: {', '.join(unknown[:5])}")
        self.strength = float(spec.strength)
        picked: list[tuple[Target, torch.Tensor, torch.Tensor]] = []
        for key, mask in spec.masks.items():
            target = targets[key]
            if mask.dtype != torch.bool or tuple(mask.shape) != target.shape:
                raise ValueError(f"{key}: penalty mask must be bool of shape {target.shape}")
            mask = mask.to(target.parameter.device)
            if not bool(mask.any()):
                continue
            fisher = target_score(target, spec.fisher).to(mask.device)[mask].float()
            if not bool(torch.isfinite(fisher).all()) or bool((fisher < 0).any()):
                raise ValueError(f"{key}: the Fisher values of the protected entries must be finite and ≥ 0")
            picked.append((target, mask, fisher))
        self.n_selected = sum(int(fisher.numel()) for _, _, fisher in picked)
        total = sum(float(fisher.double().sum()) for _, _, fisher in picked)
        if self.n_selected and not total > 0:
            raise ValueError("the Fisher values of the protected entries are all 0: nothing to weight by")
        # Mean F over every selected entry of the model (one normaliser, so relative weights across matrices stay).
        self.normaliser = total / self.n_selected if self.n_selected else 1.0
        self.terms = [_Term(target, mask, target.weight()[mask].detach().float().clone(), fisher / self.normaliser)
                      for target, mask, fisher in picked]

    def __call__(self) -> torch.Tensor:
        if not self.terms:
            return torch.zeros(())
        total = None
        for term in self.terms:
            moved = term.target.view(term.target.parameter)[term.mask].float() - term.anchor
            part = (term.weight * moved.square()).sum()
            total = part if total is None else total + part
        return 0.5 * self.strength * total


__all__ = ["FisherPenalty", "Penalty"]
