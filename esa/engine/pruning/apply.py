"""Zero a model's masked weights in place and put them back bit-exactly; count the sparsity achieved.

``prune`` keeps only the pruned elements: their flat indices in the parameter and their raw bits (an integer
view of the stored dtype, so -0.0 and NaN payloads come back as they were). ``pruned`` wraps it in a context
manager that restores on every exit and proves the restore with the project's checksum of the touched tensors.
Masks are keyed by ``Target.key`` (the parameter name, ``name[e]`` for expert ``e`` of a packed 3-D tensor).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping

import pandas as pd
import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.perturbation.saved import RestoresSaved, Saved, raw_bits
from esa.engine.perturbation.checksum import Checksum, Method, RestoreError, checksum, verify_restored

SPARSITY_COLUMNS = ["name", "n", "zeros", "fraction"]


@dataclass
class Pruning(RestoresSaved):
    """Masks applied in place. ``restore()`` writes every pruned element's original bits back."""

    saved: list[Saved] = field(repr=False)
    n_pruned: int
    restored: bool = False

    touched_word = "pruned"


def targets_by_key(model: torch.nn.Module) -> dict[str, Target]:
    """Every ≥2-D weight of ``model`` (embeddings and head included) by key; a tied weight under each name."""
    out: dict[str, Target] = {}
    for target in scored_parameters(model, include_embeddings=True, include_lm_head=True):
        for name in (target.name, *target.aliases):
            out[f"{name}[{target.expert}]" if target.packed else name] = target
    return out


def _resolve(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> list[tuple[Target, torch.Tensor]]:
    known = targets_by_key(model)
    missing = sorted(set(masks) - set(known))
    if missing:
        raise KeyError(f"masks name matrices the model lacks: {', '.join(missing[:5])}")
    pairs, seen = [], set()
    for key, mask in masks.items():
        target = known[key]
        if target.key in seen:  # a tied weight reached through two names would be saved twice
            raise ValueError(f"{key}: this matrix already has a mask (under {target.key})")
        seen.add(target.key)
        if mask.dtype != torch.bool or tuple(mask.shape) != target.shape:
            raise ValueError(f"{key}: mask must be a bool tensor of shape {target.shape}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        pairs.append((target, mask))
    return pairs


def prune(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> Pruning:
    """Set the masked weights to +0.0 in place, keeping only their indices and old bits (see ``Pruning``)."""
    pairs = _resolve(model, masks)
    saved: list[Saved] = []
    try:
        with torch.no_grad():
            for target, mask in pairs:
                param = target.parameter
                raw = raw_bits(param)
                index = torch.flatten(mask).nonzero().view(-1).to(param.device) + target.flat_offset
                saved.append(Saved(target.key, param, index, raw.index_select(0, index)))
                raw.index_fill_(0, index, 0)  # all-zero bits are +0.0 in every float dtype
    except BaseException:
        Pruning(saved, 0).restore(check=False)  # leave the model as it was
        raise
    return Pruning(saved, sum(s.index.numel() for s in saved))


@contextmanager
def pruned(model: torch.nn.Module, masks: Mapping[str, torch.Tensor], *,
           verify: Literal["touched", "all", "none"] = "touched", method: Method = "auto",
           reference: Checksum | None = None) -> Iterator[Pruning]:
    """Prune on entry; on every exit (exceptions included) restore and prove the restore by checksum.

    ``verify``: checksum the pruned tensors (default), every parameter, or nothing. ``reference``: a checksum of
    the unpruned model taken once (any superset of the tensors checked), so a run of many conditions hashes the
    model once per condition instead of twice.
    """
    names = None
    if verify == "touched":
        known = targets_by_key(model)
        names = sorted({known[key].name for key in masks if key in known})
    before = None
    if verify != "none":
        if reference is not None:
            before = reference if names is None else reference.subset(names)
        else:
            before = checksum(model, names, method)
    pruning = prune(model, masks)
    try:
        yield pruning
    finally:
        pruning.restore()
        if before is not None:
            verify_restored(before, model)


def achieved_sparsity(model: torch.nn.Module, targets: list[Target] | None = None) -> pd.DataFrame:
    """Per matrix: name (``Target.key``), n weights, exact zeros (pruned or already zero, -0.0 included), fraction.

    ``targets``: the matrices to count, which must be ``model``'s (default: its scored matrices).
    """
    if targets is None:
        targets = scored_parameters(model)
    own = {id(p) for p in model.parameters()}
    foreign = [t.key for t in targets if id(t.parameter) not in own]
    if foreign:
        raise ValueError(f"targets not in this model: {', '.join(foreign[:5])}")
    rows = []
    with torch.no_grad():
        for target in targets:
            zeros = int((target.weight() == 0).sum())
            rows.append({"name": target.key, "n": target.numel, "zeros": zeros, "fraction": zeros / target.numel})
    return pd.DataFrame(rows, columns=SPARSITY_COLUMNS)


__all__ = ["Pruning", "RestoreError", "SPARSITY_COLUMNS", "achieved_sparsity", "prune", "pruned",
           "targets_by_key"]
