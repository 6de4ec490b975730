"""Pruning masks for a whole model: one ``prune_mask`` per scored matrix, keyed by ``Target.key``.

Scores come from ``scores_for``: the weight itself (magnitude), a generator (random) or a score run's saved
``scores/<metric>.safetensors`` (parameter-shaped tensors; an expert's slice is taken with ``Target.view``).
A random mask draws from a generator seeded by (seed, target key), so it does not depend on which other
matrices are masked or in what order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping, Sequence

import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.pruning.masks import SAVED_METRIC, Group, Short, protected_mask, prune_mask, scores_for

Positions = Sequence[tuple[int, int]]


def target_generator(seed: int, key: str) -> torch.Generator:
    """A generator seeded from sha256(seed, key): the same draws for a matrix whatever else is masked."""
    digest = hashlib.sha256(f"{int(seed)}\0{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _saved_for(target: Target, saved_scores: Mapping[str, torch.Tensor], method: str) -> torch.Tensor:
    # A tied parameter may have been saved under any of its names.
    for name in (target.name, *target.aliases):
        if name in saved_scores:
            return target.view(saved_scores[name])
    raise KeyError(f"the saved {SAVED_METRIC[method]} scores have no tensor for {target.name}")


def model_masks(model: torch.nn.Module, method: str, sparsity: float, group: Group,
                saved_scores: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
                protected: Mapping[str, Positions] | None = None, short: Short = "refuse") -> dict[str, torch.Tensor]:
    """Bool mask (True = prune) of every scored matrix of ``model``, keyed by ``Target.key``.

    ``saved_scores``: parameter name → parameter-shaped score (``load_saved_scores``), for the methods that
    rank by a saved score. ``protected``: target key → (row, col) positions never pruned; ``short``: what a group
    with too few unprotected weights does (``prune_mask``).
    """
    if method not in SAVED_METRIC:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(SAVED_METRIC)}")
    if SAVED_METRIC[method] is not None and saved_scores is None:
        raise ValueError(f"{method} ranks by the saved {SAVED_METRIC[method]} score; none was given")
    targets = scored_parameters(model)
    unknown = sorted(set(protected or {}) - {t.key for t in targets})
    if unknown:
        raise KeyError(f"protected positions name matrices that are not scored: {', '.join(unknown[:5])}")
    masks: dict[str, torch.Tensor] = {}
    for target in targets:
        weight = target.weight()
        saved = None if SAVED_METRIC[method] is None else _saved_for(target, saved_scores, method)
        generator = target_generator(seed, target.key) if method == "random" else None
        score = scores_for(method, weight, saved, generator)
        shield = None
        if protected and target.key in protected:
            shield = protected_mask(target.shape, protected[target.key], score.device)
        masks[target.key] = prune_mask(score, sparsity, group, shield, short)
    return masks


def load_saved_scores(folder: str | Path, method: str) -> dict[str, torch.Tensor] | None:
    """The score tensors ``method`` ranks by, from ``<folder>/scores/<metric>.safetensors``; None if it needs none.

    ``folder``: a score run's output folder (the one holding ``scores/``).
    """
    if method not in SAVED_METRIC:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(SAVED_METRIC)}")
    metric = SAVED_METRIC[method]
    return None if metric is None else load_metric_scores(folder, metric, f"{method} needs")


def load_metric_scores(folder: str | Path, metric: str, who: str = "pruning needs") -> dict[str, torch.Tensor]:
    """Parameter name → parameter-shaped score of one saved metric (``<folder>/scores/<metric>.safetensors``)."""
    path = Path(folder) / "scores" / f"{metric}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{who} the saved {metric} scores, but {path} does not exist")
    from safetensors.torch import load_file  # only score-reading methods need it

    return load_file(str(path))


__all__ = ["Positions", "load_metric_scores", "load_saved_scores", "model_masks", "target_generator"]
