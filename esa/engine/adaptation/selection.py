"""Which weights an adaptation arm touches: the top, bottom or a random fraction of every scored matrix.

Every selection is built from ``prune_mask``, so the three arms select exactly the same count per group
(``floor(fraction · n)``, n = a row's columns or the matrix's entries): matched sizes by construction. A mask is
True where a weight is *selected* (trained, frozen or penalised, depending on the arm).

Order. ``prune_mask`` ranks a group NaN first, then by ascending score, ties by lower flat index first. *bottom*
is the first k of that order (its own pruning mask). *top* is the last k of the **same** order, taken as the
complement of the first n − k, not as ``prune_mask(-score)``: negating keeps NaN first (−NaN is NaN) and keeps
ties broken towards low indices, so on tied or NaN scores top and bottom would overlap. With one order for both,

* top and bottom are disjoint whenever 2k ≤ n (any fraction ≤ 0.5), ties and NaN included;
* a NaN score ranks below every number: *bottom* takes NaN entries first, *top* takes one only when its group
  has fewer than k non-NaN scores.

*random* ranks by uniform draws from ``target_generator(seed, key)`` (a matrix's draws do not depend on which
other matrices exist), the same draws as the pruning stage's random baseline at that seed.
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.pruning.masks import Group, GROUPS, pruned_count, prune_mask, random_scores
from esa.engine.pruning.model_masks import target_generator

Which = Literal["top", "bottom", "random"]
WHICH: tuple[str, ...] = ("top", "bottom", "random")


def _group_size(shape: tuple[int, int], group: Group) -> int:
    return shape[1] if group == "row" else shape[0] * shape[1]


def _top_mask(score: torch.Tensor, k: int, group: Group) -> torch.Tensor:
    """The last k of ``prune_mask``'s order in every group: the complement of its first n − k."""
    n = _group_size(tuple(score.shape), group)
    if k == 0:
        return torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    # (n − k + ½)/n sits half a weight above n − k: the float rounding (≪ ½ weight) cannot change the floor.
    rest = (n - k + 0.5) / n
    if pruned_count(rest, n) != n - k:  # never expected; a wrong count would silently unmatch the arms
        raise ArithmeticError(f"cannot express {n - k} of {n} as a sparsity ({rest!r})")
    return ~prune_mask(score, rest, group)


def target_score(target: Target, scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``target``'s 2-D slice of a parameter-shaped score (or of one already shaped like the matrix)."""
    # Saved scores are keyed by parameter name (a tied parameter under any of its names); a target key (an
    # expert slice ``name[e]``) is accepted too, for scores built per target.
    for name in (target.key, target.name, *target.aliases):
        if name in scores:
            score = target.view(scores[name])
            break
    else:
        raise KeyError(f"the scores have no tensor for {target.key}")
    if tuple(score.shape) != target.shape:
        raise ValueError(f"{target.key}: score shape {tuple(score.shape)} is not the matrix's {target.shape}")
    return score


def select(score: torch.Tensor, which: Which, fraction: float, group: Group,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool mask (True = selected) of one matrix's ``which`` ``fraction`` per ``group``.

    ``score``: the 2-D score (larger = more important); for ``random`` only its shape and device are used and
    ``generator`` gives the draws.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    if which == "random":
        if generator is None:
            raise ValueError("a random selection needs a generator")
        return prune_mask(random_scores(score.shape, generator).to(score.device), fraction, group)
    if which == "bottom":
        return prune_mask(score, fraction, group)
    return _top_mask(score, pruned_count(fraction, _group_size(tuple(score.shape), group)), group)


def critical_masks(model: torch.nn.Module, which: Which, fraction: float, group: Group,
                   scores: Mapping[str, torch.Tensor] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Bool mask (True = selected) of every scored matrix of ``model``, keyed by ``Target.key``.

    ``scores``: parameter name → parameter-shaped score (``load_saved_scores``), larger = more important;
    required for ``top`` and ``bottom``, ignored by ``random`` (which draws from ``target_generator(seed, key)``).
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if which != "random" and scores is None:
        raise ValueError(f"a {which} selection ranks by scores; none were given")
    masks: dict[str, torch.Tensor] = {}
    for target in scored_parameters(model):
        if which == "random":
            weight = target.weight()
            masks[target.key] = select(weight, which, fraction, group, target_generator(seed, target.key))
        else:
            masks[target.key] = select(target_score(target, scores), which, fraction, group)
    return masks


def count_selected(masks: Mapping[str, torch.Tensor]) -> int:
    """How many entries the masks select, over all matrices."""
    return sum(int(mask.sum()) for mask in masks.values())


def selected_fraction(masks: Mapping[str, torch.Tensor]) -> float:
    """Selected entries over all entries the masks cover (0 when they cover none)."""
    total = sum(mask.numel() for mask in masks.values())
    return count_selected(masks) / total if total else 0.0


__all__ = ["WHICH", "Which", "count_selected", "critical_masks", "select", "selected_fraction",
           "target_score"]
