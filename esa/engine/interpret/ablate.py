"""Zero a set of critical weights in place, or a matched random control, and restore them bit for bit.

A selection is a frame in this project's top-k layout (``tensor``, ``layer``, ``component``, ``expert``, ``row``,
``col``, ``flat_index``, ``rank``; see ``esa.engine.scoring.select.COLUMNS``). ``topk_per_matrix`` keeps the first
k by rank in each matrix (an expert slice is a matrix), so it reads per-layer and global tables alike.

The random control takes, in every matrix, as many weights as the selection has there, uniformly among that
matrix's weights that are neither selected nor already zero (zeroing a zero would be a condition that changes
nothing), from a seeded ``torch.Generator``: matrices in (tensor, expert) order, so a seed fixes the whole draw.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from esa.engine.models.targets import component_of, layer_of
from esa.engine.perturbation.apply import Applied, parameters, perturbed
from esa.engine.perturbation.controls import matrix_geometry

# Above this many weights a matrix is drawn from by rejection instead of through a list of its eligible indices.
POOL_LIMIT = 1 << 24


def _one(table: pd.DataFrame, column: str) -> None:
    if column in table.columns and table[column].nunique(dropna=True) > 1:
        raise ValueError(f"the table mixes several {column} values; pick one before ablating")


def _expert(table: pd.DataFrame) -> pd.Series:
    if "expert" not in table.columns:
        return pd.Series(-1, index=table.index, dtype=np.int64)
    return table["expert"].astype("Int64").fillna(-1).astype(np.int64)


def complete(table: pd.DataFrame, model: torch.nn.Module) -> pd.DataFrame:
    """The table with ``layer``, ``component``, ``expert`` and ``flat_index`` filled in where missing."""
    out = table.copy()
    if "layer" not in out.columns:
        out["layer"] = out["tensor"].map(layer_of).astype("Int64")
    if "component" not in out.columns:
        out["component"] = out["tensor"].map(component_of)
    if "expert" not in out.columns:
        out["expert"] = pd.array([None] * len(out), "Int64")
    if "flat_index" not in out.columns:
        params, expert = parameters(model), _expert(out)
        flat = []
        for name, e, row, col in zip(out["tensor"], expert, out["row"], out["col"]):
            _, cols, offset = matrix_geometry(params[name], None if e < 0 else int(e))
            flat.append(offset + int(row) * cols + int(col))
        out["flat_index"] = np.asarray(flat, dtype=np.int64)
    return out


def topk_per_matrix(table: pd.DataFrame, k: int | Mapping[str, int]) -> pd.DataFrame:
    """The first ``k`` weights by rank of each matrix; ``k`` may be a component → k mapping (a component it does
    not name gives none). A matrix with fewer rows than k gives all it has."""
    _one(table, "metric")
    _one(table, "mode")
    df = table.assign(_e=_expert(table))
    order = ["tensor", "_e"] + (["rank"] if "rank" in df.columns else [])
    df = df.sort_values(order, kind="stable")
    position = df.groupby(["tensor", "_e"], sort=False).cumcount()
    if isinstance(k, Mapping):
        component = df["component"] if "component" in df.columns else df["tensor"].map(component_of)
        limit = component.map(lambda c: int(k.get(c, 0)))
    else:
        limit = pd.Series(int(k), index=df.index)
    picked = df[position < limit].drop(columns="_e")
    if picked.duplicated(["tensor", "flat_index"] if "flat_index" in picked.columns else
                         ["tensor", "row", "col"]).any():
        raise ValueError("the table lists a weight twice")
    return picked.reset_index(drop=True)


def _draw(ok: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n distinct indices i with ok[i], uniformly, in draw order."""
    available = int(ok.sum())
    if n > available:
        raise ValueError(f"cannot draw {n} weights from the {available} eligible ones")
    if ok.numel() <= POOL_LIMIT:
        pool = torch.nonzero(ok).flatten()
        return pool[torch.randperm(pool.numel(), generator=generator)[:n]]
    taken: list[int] = []
    seen: set[int] = set()
    while len(taken) < n:
        batch = torch.randint(0, ok.numel(), (2 * (n - len(taken)) + 16,), generator=generator)
        for i in batch[ok[batch]].tolist():
            if i not in seen:
                seen.add(i)
                taken.append(i)
                if len(taken) == n:
                    break
    return torch.tensor(taken, dtype=torch.int64)


def matched_random(model: torch.nn.Module, selection: pd.DataFrame, generator: torch.Generator) -> pd.DataFrame:
    """As many weights per matrix as ``selection`` has there, uniformly among the matrix's other non-zero weights.

    Rows carry the selection's tensor/layer/component/expert, their own row/col/flat_index, ``rank`` 0..n-1 in draw
    order and a NaN ``score``.
    """
    sel = complete(selection, model)
    params = parameters(model)
    parts = []
    for (tensor, e), group in sel.assign(_e=_expert(sel)).groupby(["tensor", "_e"], sort=True):
        expert = None if e < 0 else int(e)
        rows, cols, offset = matrix_geometry(params[tensor], expert)
        values = params[tensor].detach()
        values = (values[expert] if values.dim() == 3 else values).reshape(-1).cpu()
        ok = values != 0
        ok[torch.as_tensor(group["flat_index"].to_numpy(np.int64) - offset)] = False
        local = _draw(ok, len(group), generator).numpy()
        first = group.iloc[0]
        parts.append(pd.DataFrame({
            "tensor": tensor, "layer": first["layer"], "component": first["component"],
            "expert": pd.array([expert] * len(local), "Int64"), "row": local // cols, "col": local % cols,
            "flat_index": local + offset, "score": np.nan, "rank": np.arange(len(local), dtype=np.int64)}))
    columns = ["tensor", "layer", "component", "expert", "row", "col", "flat_index", "score", "rank"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


@contextmanager
def ablated(model: torch.nn.Module, selection: pd.DataFrame) -> Iterator[Applied]:
    """Zero ``selection`` in place; on every exit restore it and verify the touched tensors by checksum."""
    if not len(selection):
        raise ValueError("nothing to ablate: the selection is empty")
    with perturbed(model, complete(selection, model), "zero") as applied:
        yield applied


@contextmanager
def ablate_topk(model: torch.nn.Module, topk_table: pd.DataFrame,
                k_per_layer_component: int | Mapping[str, int]) -> Iterator[Applied]:
    """Zero the first k weights by rank of every matrix of ``topk_table`` (see ``topk_per_matrix``)."""
    with ablated(model, topk_per_matrix(complete(topk_table, model), k_per_layer_component)) as applied:
        yield applied


__all__ = ["ablate_topk", "ablated", "complete", "matched_random", "topk_per_matrix"]
