"""Which weights of one matrix to prune: the lowest-score ones, an exact count per comparison group.

A mask is True where a weight is pruned (set to zero). Pruning keeps high-score weights and removes low-score
ones, so every score here reads "larger = more important". The order within a group is: NaN scores first (a
score that could not be computed says nothing for keeping the weight), then ascending score, ties by flat index
(lower index first), so a mask is a pure function of the score tensor. Protected positions go last and are
pruned only when the group has nothing else left, which is refused.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal, Sequence

import torch

from esa.names import PRUNING_GROUPS, PRUNING_METHODS

Group = Literal["row", "matrix"]
Short = Literal["refuse", "cap"]  # a group with fewer unprotected weights than its count: refuse, or prune them all
GROUPS: tuple[str, ...] = PRUNING_GROUPS

# Method → the metric whose saved score file (scores/<metric>.safetensors) ranks the weights (esa.names).
SAVED_METRIC: dict[str, str | None] = PRUNING_METHODS
METHODS: tuple[str, ...] = tuple(SAVED_METRIC)


def pruned_count(sparsity: float, n: int) -> int:
    """floor(sparsity · n), with the sparsity read as the decimal it is written as.

    Binary floats would floor 0.29 · 100 = 28.999999999999996 to 28; the decimal reading gives 29.
    """
    check_sparsity(sparsity)
    return math.floor(Fraction(repr(float(sparsity))) * n)


def check_sparsity(sparsity: float) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")


def _prune_order(score: torch.Tensor, protected: torch.Tensor | None) -> torch.Tensor:
    """Column order along the last dim in which weights are pruned (first = pruned first).

    Stable sorts from the least to the most significant key: score, then NaN-first, then protected-last. Each
    stable pass keeps the previous order among equal keys, and the first pass keeps the flat-index order.
    """
    nan = torch.isnan(score)
    order = torch.sort(torch.where(nan, torch.zeros_like(score), score), dim=-1, stable=True).indices
    not_nan = (~nan).to(torch.int8).gather(-1, order)
    order = order.gather(-1, torch.sort(not_nan, dim=-1, stable=True).indices)
    if protected is not None:
        last = protected.to(torch.int8).gather(-1, order)
        order = order.gather(-1, torch.sort(last, dim=-1, stable=True).indices)
    return order


def prune_mask(score: torch.Tensor, sparsity: float, group: Group,
               protected: torch.Tensor | None = None, short: Short = "refuse") -> torch.Tensor:
    """Bool mask (True = prune) of the floor(sparsity · n) lowest-score weights of each group of ``score``.

    ``group``: "row" compares within each row (n = columns; Wanda's per-output comparison for an
    ``nn.Linear`` weight), "matrix" within the whole matrix (n = rows · columns). ``protected``: a bool tensor
    shaped like ``score`` of weights never pruned; the next-lowest weights are pruned instead, so the counts
    stay exact. A group with fewer unprotected weights than the count is refused (``short="refuse"``), or pruned
    of every unprotected weight (``short="cap"``: the protected set wins, and that group ends below the sparsity).
    """
    if score.dim() != 2:
        raise ValueError(f"score must be a 2-D matrix, got shape {tuple(score.shape)}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    if protected is not None:
        if protected.shape != score.shape or protected.dtype != torch.bool:
            raise ValueError(f"protected must be a bool tensor of shape {tuple(score.shape)}")
        protected = protected.to(score.device)
    rows, cols = score.shape
    # A "matrix" group is one row of the flattened matrix: the same per-row code serves both.
    grouped = score if group == "row" else score.reshape(1, rows * cols)
    shield = None if protected is None else protected.reshape(grouped.shape)
    k = pruned_count(sparsity, grouped.shape[1])
    if shield is not None:
        free = (~shield).sum(dim=1)
        if short == "refuse" and bool((free < k).any()):
            raise ValueError(f"a {group} group has {int(free.min())} unprotected weights, fewer than the {k} "
                             f"to prune")
    if k and shield is None and not bool(torch.isnan(grouped).any()):
        return _lowest_k(grouped, k).reshape(rows, cols)
    mask = torch.zeros(grouped.shape, dtype=torch.bool, device=score.device)
    if k:
        mask.scatter_(1, _prune_order(grouped, shield)[:, :k], True)
        if shield is not None:
            mask &= ~shield  # protected weights sort last, so only a short group (short="cap") reaches them
    return mask.reshape(rows, cols)


def _lowest_k(grouped: torch.Tensor, k: int) -> torch.Tensor:
    """The first k of each row in ``_prune_order`` without sorting, for rows with no NaN and nothing protected.

    Everything below the row's k-th smallest value is in; of the weights equal to it, the lowest-index ones
    fill the rest. A selection instead of a full sort: a few times faster on large matrices, the same mask.
    """
    kth = torch.kthvalue(grouped, k, dim=1, keepdim=True).values
    below = grouped < kth
    at = grouped == kth
    wanted = k - below.sum(dim=1, keepdim=True)
    return below | (at & (at.cumsum(dim=1) <= wanted))


def protected_mask(shape: Sequence[int], positions: Sequence[tuple[int, int]],
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Bool tensor of ``shape`` that is True at the given (row, col) positions (e.g. detected super weights)."""
    rows, cols = shape
    mask = torch.zeros((rows, cols), dtype=torch.bool, device=device)
    for row, col in positions:
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"protected position ({row}, {col}) is outside a {rows}×{cols} matrix")
        mask[row, col] = True
    return mask


def protect(score: torch.Tensor, sparsity: float, group: Group,
            positions: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``prune_mask`` with the (row, col) ``positions`` kept: the next-lowest weights are pruned in their place."""
    return prune_mask(score, sparsity, group, protected_mask(score.shape, positions, score.device))


def random_scores(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Uniform scores for the random baseline: through ``prune_mask`` a random mask with the exact counts.

    Float64 keeps ties (resolved by index, so still exact counts) out of any realistic matrix.
    """
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64)


def scores_for(method: str, weight: torch.Tensor, saved: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The score that ranks one matrix's weights for ``method`` (larger = kept longer).

    ``weight``: the 2-D weight. ``saved``: this matrix's slice of ``scores/<SAVED_METRIC[method]>.safetensors``
    (methods that read a saved score). ``generator``: the random baseline's draws.
    """
    if method not in SAVED_METRIC:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(METHODS)}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D matrix, got shape {tuple(weight.shape)}")
    if method == "magnitude":
        return weight.detach().abs()
    if method == "random":
        if generator is None:
            raise ValueError("the random baseline needs a generator")
        return random_scores(weight.shape, generator).to(weight.device)
    metric = SAVED_METRIC[method]
    if saved is None:
        raise ValueError(f"{method} ranks by the saved {metric} score; none was given")
    if saved.shape != weight.shape:
        raise ValueError(f"saved {metric} score has shape {tuple(saved.shape)}, the weight {tuple(weight.shape)}")
    return saved


__all__ = ["Group", "GROUPS", "METHODS", "SAVED_METRIC", "check_sparsity", "pruned_count", "prune_mask",
           "protected_mask", "protect", "random_scores", "scores_for"]
