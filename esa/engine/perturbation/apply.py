"""Apply a registered perturbation in place to the touched weights only, and restore them bit-exactly.

``apply`` gathers the touched elements' raw bits (an integer view of the stored dtype, so NaN payloads survive),
keeps only those and their flat indices, and writes the new values in place; ``Applied.restore`` writes the raw
bits back. Nothing else of the model is copied. ``checksum``/``verify_restored`` prove the restore against the
state before the condition. The registry itself lives in ``esa.engine.perturbation.registry``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import pandas as pd
import torch

from esa.engine.perturbation.checksum import Checksum, Method, RestoreError, checksum, verify_restored
from esa.engine.perturbation.controls import matrix_geometry
from esa.engine.perturbation.saved import RestoresSaved, Saved, raw_bits
# Re-exported so callers have one import path for the registry and for apply/restore.
from esa.engine.perturbation.registry import (REGISTRY, AdaptiveParams, BitFlipParams, CorrelatedParams,  # noqa: F401
                                      ExpandContext, GaussParams, Grad, GradStepParams, Group, ParamSource,
                                      Perturbation, ScaleParams, SignFlipParams, Touch, ZeroParams,
                                      get_perturbation, head_dim_of, params_from_spec, register)
from esa.engine.models.targets import component_of



@dataclass
class Applied(RestoresSaved):
    """A perturbation in place. ``restore()`` puts every touched element's original bits back."""

    perturbation: str
    params: Any
    seed: int
    saved: list[Saved] = field(repr=False)
    n_touched: int
    n_changed: int  # touched elements whose bits changed
    n_nonfinite: int  # NaN/inf among the new values: the condition is diverged
    # |new| against |old| per touched element; a NaN on either side counts in none, so the three sum to
    # n_touched less those. A bit flip scales by a power of two in either direction, so the split says which.
    n_grew: int = 0
    n_shrank: int = 0
    n_unchanged: int = 0
    restored: bool = False

    @property
    def diverged(self) -> bool:
        return self.n_nonfinite > 0

    def summary(self) -> dict[str, Any]:
        return {"perturbation": self.perturbation, "params": asdict(self.params), "seed": self.seed,
                "n_touched": self.n_touched, "n_changed": self.n_changed, "n_nonfinite": self.n_nonfinite,
                "n_grew": self.n_grew, "n_shrank": self.n_shrank, "n_unchanged": self.n_unchanged,
                "diverged": self.diverged, "tensors": len(self.tensors), "saved_bytes": self.saved_bytes}


def parameters(source: ParamSource) -> dict[str, torch.Tensor]:
    """Name → parameter; a model's tied parameters answer to every one of their names."""
    if isinstance(source, torch.nn.Module):
        return dict(source.named_parameters(remove_duplicate=False))
    return dict(source)


def groups_of(selection: pd.DataFrame, params: Mapping[str, torch.Tensor]) -> list[Group]:
    """The selection as per-matrix groups (matrices by tensor name, then expert), checked against the shapes.

    Within a matrix the selection's row order is kept (rank order for a top-k set).
    """
    tensor = selection["tensor"].to_numpy(dtype=object)
    missing = set(tensor.tolist()) - set(params)
    if missing:
        raise KeyError(f"selection names tensors the model lacks: {', '.join(sorted(missing)[:5])}")
    expert = selection["expert"].astype("Int64").fillna(-1).to_numpy(np.int64)
    flat_all = selection["flat_index"].to_numpy(np.int64)
    has_rc = {"row", "col"} <= set(selection.columns)
    row_all = selection["row"].to_numpy(np.int64) if has_rc else None
    col_all = selection["col"].to_numpy(np.int64) if has_rc else None
    score_all = selection["score"].to_numpy(np.float64) if "score" in selection.columns else None
    comp_all = selection["component"].to_numpy(dtype=object) if "component" in selection.columns else None
    names, tid = np.unique(tensor.astype(str), return_inverse=True)
    order = np.lexsort((expert, tid))  # stable: keeps the selection's order within a matrix
    key_t, key_e = tid[order], expert[order]
    cuts = np.flatnonzero((np.diff(key_t) != 0) | (np.diff(key_e) != 0)) + 1
    out = []
    for part in np.split(order, cuts) if len(order) else []:
        name, e = str(names[tid[part[0]]]), int(expert[part[0]])
        exp = None if e < 0 else e
        rows, cols, offset = matrix_geometry(params[name], exp)
        flat = flat_all[part]
        local = flat - offset
        if (local < 0).any() or (local >= rows * cols).any():
            raise ValueError(f"{name} (expert {exp}): flat indices outside the matrix")
        if has_rc and not (np.array_equal(local // cols, row_all[part]) and np.array_equal(local % cols,
                                                                                          col_all[part])):
            raise ValueError(f"{name} (expert {exp}): row/col disagree with flat_index for shape "
                             f"({rows}, {cols}); was the selection made on another model?")
        comp = str(comp_all[part[0]]) if comp_all is not None else component_of(name)
        out.append(Group(name, exp, comp, flat, None if score_all is None else score_all[part]))
    return out


def _score_max(groups: list[Group], per_matrix: bool) -> dict[tuple[str, int | None], float | None]:
    def top(gs: list[Group]) -> float | None:
        vals = [np.nanmax(np.abs(g.score)) for g in gs if g.score is not None and len(g.score)
                and not np.isnan(g.score).all()]
        return float(max(vals)) if vals else None
    overall = top(groups)
    return {(g.tensor, g.expert): (top([g]) if per_matrix else overall) for g in groups}


def apply(source: ParamSource, selection: pd.DataFrame, perturbation: str, params: Any = None, seed: int = 0, *,
          grad: Grad | None = None) -> Applied:
    """Perturb the selected weights in place; only their indices and old bits are kept (see ``Applied``).

    ``selection`` has columns tensor, expert, flat_index (row/col/component/score when present are used and
    checked). ``grad`` (grad_step): name → gradient of the mean calibration NLL shaped like the parameter, or a
    function returning that mapping. Draws come from a CPU generator seeded with ``seed``, matrices in name order.
    """
    entry = get_perturbation(perturbation)
    p = entry.params() if params is None else params
    if not isinstance(p, entry.params):
        raise TypeError(f"{perturbation} takes {entry.params.__name__}, got {type(p).__name__}")
    named = parameters(source)
    model = source if isinstance(source, torch.nn.Module) else None
    generator = torch.Generator().manual_seed(int(seed))
    groups = groups_of(selection, named)
    if entry.expand is not None:
        groups = entry.expand(groups, p, ExpandContext(named, model, generator))
    for g in groups:
        if len(np.unique(g.index)) != len(g.index):
            raise ValueError(f"{g.tensor}: a weight is selected twice")
    grads: Mapping[str, torch.Tensor] | None = None
    if entry.needs_grad:
        if grad is None:
            raise ValueError(f"{perturbation} needs grad= (the calibration gradient)")
        grads = grad() if callable(grad) else grad
    maxima = _score_max(groups, getattr(p, "normalize", "global") == "per_matrix")

    saved: list[Saved] = []
    n_changed, n_nonfinite, n_touched, grew, shrank, same = [], [], 0, [], [], []
    try:
        with torch.no_grad():
            for g in groups:
                param = named[g.tensor]
                raw = raw_bits(param)
                index = torch.tensor(g.index, dtype=torch.int64, device=param.device)
                old_raw = raw.index_select(0, index)
                old = old_raw.view(param.dtype)
                gsel = None
                if grads is not None:
                    if g.tensor not in grads or grads[g.tensor] is None:
                        raise KeyError(f"no gradient for {g.tensor}")
                    gflat = grads[g.tensor].detach().reshape(-1)
                    gsel = gflat.index_select(0, index.to(gflat.device))
                touch = Touch(g.tensor, g.expert, matrix_view(param, g.expert), index, old,
                              None if g.score is None else torch.tensor(g.score, dtype=torch.float64),
                              maxima[(g.tensor, g.expert)], gsel, generator)
                new = entry.values(touch, p).to(param.dtype).contiguous()
                if new.shape != old.shape:
                    raise ValueError(f"{perturbation} returned shape {tuple(new.shape)} for {tuple(old.shape)}")
                new_raw = new.view(old_raw.dtype)
                raw.index_copy_(0, index, new_raw)
                saved.append(Saved(g.tensor, param, index, old_raw))
                n_touched += index.numel()
                n_changed.append((new_raw != old_raw).sum())
                n_nonfinite.append((~torch.isfinite(new)).sum())
                # In the stored dtype: exact, and inf (overflow) compares as grown.
                grew.append((new.abs() > old.abs()).sum())
                shrank.append((new.abs() < old.abs()).sum())
                same.append((new.abs() == old.abs()).sum())
    except BaseException:
        Applied(perturbation, p, seed, saved, 0, 0, 0).restore(check=False)  # leave the model as it was
        raise
    total = lambda xs: int(sum(int(x) for x in xs))  # noqa: E731  (one sync per matrix, after all writes)
    return Applied(perturbation, p, int(seed), saved, n_touched, total(n_changed), total(n_nonfinite),
                   total(grew), total(shrank), total(same))


def matrix_view(param: torch.Tensor, expert: int | None) -> torch.Tensor:
    return param.detach()[expert] if param.dim() == 3 else param.detach()


@contextmanager
def perturbed(source: ParamSource, selection: pd.DataFrame, perturbation: str, params: Any = None, seed: int = 0,
              *, grad: Grad | None = None, verify: Literal["touched", "all", "none"] = "touched",
              method: Method = "auto", reference: Checksum | None = None) -> Iterator[Applied]:
    """Apply on entry; on exit restore and prove the restore (checksum of the touched tensors by default).

    ``reference``: a checksum of the unperturbed model taken once per run (any superset of the tensors to check),
    so each condition costs one checksum, after its restore, instead of two.
    """
    names = None if verify == "all" else sorted(set(selection["tensor"]))
    before = None
    if verify != "none":
        if reference is not None:
            before = reference if names is None else reference.subset(names)
        else:
            before = checksum(source, names, method)
    applied = apply(source, selection, perturbation, params, seed, grad=grad)
    try:
        yield applied
    finally:
        applied.restore()
        if before is not None:
            verify_restored(before, source)


__all__ = ["REGISTRY", "Perturbation", "register", "get_perturbation", "params_from_spec", "Touch", "Group",
           "ZeroParams", "SignFlipParams", "ScaleParams", "GaussParams", "BitFlipParams", "GradStepParams",
           "CorrelatedParams", "AdaptiveParams", "Applied", "Saved", "RestoreError", "apply", "perturbed",
           "parameters", "groups_of", "head_dim_of", "Checksum", "checksum", "verify_restored"]
