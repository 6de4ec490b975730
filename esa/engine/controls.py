"""Target sets for Phase 3: the super set and its matched controls.

Every control has exactly the super set's number of weights in each matrix (an expert slice is a matrix), so a
difference in damage cannot come from where the weights sit, only from which weights they are:

- ``random_k``: uniform draws without repeats from each matrix, the super set excluded, from the run's seed.
  Each matrix has its own stream (seed, crc32 of its key), so one matrix's draw does not depend on the others.
- ``bottom_k``: the lowest-score non-zero weights of each matrix (Phase 2's per-matrix bottom-k candidates),
  any super weight removed first.

All frames keep the input's columns; ``rank`` is the position within the matrix, and a random control's
``score`` is NaN (it was not selected by score).
"""

from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from esa.engine.select import per_matrix_counts, take_per_matrix

KEY = ["tensor", "_e", "flat_index"]
# Below this many eligible weights a matrix's complement is listed outright; above it, draws are rejected
# against the excluded set instead (no permutation or index list of a big matrix is ever materialised).
SMALL_MATRIX = 1 << 16


def _expert_key(df: pd.DataFrame) -> pd.Series:
    return df["expert"].astype("Int64").fillna(-1).astype(np.int64)


def _only(df: pd.DataFrame, column: str) -> object | None:
    if column not in df.columns:
        return None
    values = df[column].dropna().unique()
    if len(values) > 1:
        raise ValueError(f"selection mixes several {column} values ({', '.join(map(str, values))}); pick one")
    return values[0] if len(values) else None


def super_set(topk: pd.DataFrame, k: int, *, metric: str | None = None, mode: str | None = None) -> pd.DataFrame:
    """The super set: rows of one metric/mode with rank < k (per matrix for per_layer, overall for global)."""
    if k <= 0:
        raise ValueError("k must be > 0")
    df = topk
    if metric is not None:
        df = df[df["metric"] == metric]
    if mode is not None:
        df = df[df["mode"] == mode]
    _only(df, "metric")
    _only(df, "mode")
    out = df[df["rank"] < k]
    if out.duplicated(["tensor", "flat_index"]).any():
        raise ValueError("the selection lists a weight twice")
    return out.sort_values(["tensor", "expert", "rank"], kind="stable").reset_index(drop=True)


def matrix_geometry(param: torch.Tensor, expert: int | None) -> tuple[int, int, int]:
    """(rows, cols, flat offset) of the matrix a selection row refers to: the parameter, or its expert slice."""
    if param.dim() == 2:
        return int(param.shape[0]), int(param.shape[1]), 0
    if param.dim() == 3:
        if expert is None or not 0 <= expert < param.shape[0]:
            raise ValueError(f"a 3-D parameter needs an expert index in 0..{param.shape[0] - 1}, got {expert}")
        rows, cols = int(param.shape[1]), int(param.shape[2])
        return rows, cols, expert * rows * cols
    raise ValueError(f"parameter of shape {tuple(param.shape)} is not a weight matrix")


def matrix_rng(seed: int, tensor: str, expert: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(f"{tensor}[{expert}]".encode())])


def draw_excluding(rng: np.random.Generator, size: int, n: int, excluded: np.ndarray) -> np.ndarray:
    """n distinct indices from range(size) minus ``excluded``, uniformly, in draw order."""
    excluded = np.unique(excluded)
    available = size - len(excluded)
    if n > available:
        raise ValueError(f"cannot draw {n} weights from {available} outside the excluded set")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if size <= SMALL_MATRIX:
        pool = np.setdiff1d(np.arange(size, dtype=np.int64), excluded, assume_unique=True)
        return rng.choice(pool, size=n, replace=False)
    taken: list[np.ndarray] = []
    seen = set(excluded.tolist())
    have = 0
    while have < n:
        # Oversample so that a draw usually suffices even with a large excluded fraction.
        want = n - have
        batch = rng.integers(0, size, size=int(want * size / available) + 16, dtype=np.int64)
        fresh = []
        for i in batch.tolist():
            if i not in seen:
                seen.add(i)
                fresh.append(i)
                if len(fresh) == want:
                    break
        taken.append(np.asarray(fresh, dtype=np.int64))
        have += len(fresh)
    return np.concatenate(taken)


def _frame_like(template: pd.DataFrame, columns: dict[str, np.ndarray | list]) -> pd.DataFrame:
    """A frame with ``template``'s columns and dtypes. A column not in ``columns`` repeats the template's value
    when it has a single one (metric, mode) and is missing (NA) otherwise."""
    n = len(next(iter(columns.values())))
    out = {}
    for col in template.columns:
        if col in columns:
            out[col] = pd.Series(columns[col]).astype(template[col].dtype)
        else:
            values = template[col].dropna().unique()
            fill = values[0] if len(values) == 1 else None
            out[col] = pd.Series([fill] * n, dtype=object).astype(template[col].dtype)
    return pd.DataFrame(out)


def random_k(super_df: pd.DataFrame, params: Mapping[str, torch.Tensor], seed: int) -> pd.DataFrame:
    """Uniform random weights with the super set's per-matrix counts, none of them in the super set."""
    if not len(super_df):
        return super_df.iloc[:0].copy()
    parts: dict[str, list] = {c: [] for c in ("tensor", "layer", "component", "expert", "row", "col",
                                              "flat_index", "score", "rank")}
    df = super_df.assign(_e=_expert_key(super_df))
    for (tensor, e), group in df.groupby(["tensor", "_e"], sort=True):
        if tensor not in params:
            raise KeyError(f"selection names {tensor}, which is not a parameter of the model")
        expert = None if e < 0 else int(e)
        rows, cols, offset = matrix_geometry(params[tensor], expert)
        local = group["flat_index"].to_numpy(np.int64) - offset
        if (local < 0).any() or (local >= rows * cols).any():
            raise ValueError(f"{tensor} (expert {expert}): flat indices outside the matrix")
        picked = draw_excluding(matrix_rng(seed, tensor, int(e)), rows * cols, len(group), local)
        n = len(picked)
        first = group.iloc[0]
        parts["tensor"] += [tensor] * n
        parts["layer"] += [first["layer"]] * n
        parts["component"] += [first["component"]] * n
        parts["expert"] += [first["expert"]] * n
        parts["row"].append(picked // cols)
        parts["col"].append(picked % cols)
        parts["flat_index"].append(picked + offset)
        parts["score"].append(np.full(n, np.nan))
        parts["rank"].append(np.arange(n, dtype=np.int64))
    columns = {c: (np.concatenate(v) if isinstance(v[0], np.ndarray) else v) for c, v in parts.items()}
    return _frame_like(super_df, columns)


def bottom_k(super_df: pd.DataFrame, candidates: pd.DataFrame,
             params: Mapping[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """The lowest-score non-zero weights of each matrix, as many as the super set has there, disjoint from it.

    ``candidates`` are Phase 2's per-matrix bottom-k rows (ordered by ``rank`` within each matrix; filtered to the
    super set's metric when both carry one). With ``params``, candidates whose weight is now zero are dropped too.
    Raises when a matrix has too few candidates left.
    """
    if not len(super_df):
        return super_df.iloc[:0].copy()
    metric = _only(super_df, "metric")
    cand = candidates
    if metric is not None and "metric" in cand.columns:
        cand = cand[cand["metric"] == metric]
    cand = cand.assign(_e=_expert_key(cand))
    supers = super_df.assign(_e=_expert_key(super_df))[KEY].drop_duplicates()
    cand = cand.merge(supers.assign(_super=True), on=KEY, how="left")
    cand = cand[cand["_super"].isna()].drop(columns="_super")
    if params is not None and len(cand):
        keep = np.ones(len(cand), dtype=bool)
        for tensor, idx in cand.groupby("tensor", sort=False).indices.items():
            flat = params[tensor].detach().reshape(-1)
            where = torch.as_tensor(cand["flat_index"].to_numpy(np.int64)[idx], device=flat.device)
            keep[idx] = (flat.index_select(0, where) != 0).cpu().numpy()
        cand = cand[keep]
    # Re-rank what is left in each matrix, keeping the candidates' order.
    cand = cand.sort_values(["tensor", "_e", "rank"], kind="stable")
    cand["rank"] = cand.groupby(["tensor", "_e"], sort=False).cumcount().astype(np.int64)
    picked = take_per_matrix(cand.drop(columns="_e"), per_matrix_counts(super_df))
    return _frame_like(super_df, {c: picked[c].to_numpy() for c in picked.columns if c in super_df.columns})


def borrow_scores(control: pd.DataFrame, super_df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``control`` carrying the super set's scores, matrix by matrix in rank order.

    For score-weighted perturbations (``adaptive``): a control then receives the same multiset of strengths in
    each matrix as the super set, so only the choice of weights differs.
    """
    out = control.copy()
    c_e, s_e = _expert_key(control), _expert_key(super_df)
    by_matrix = {key: g.sort_values("rank", kind="stable")["score"].to_numpy()
                 for key, g in super_df.assign(_e=s_e).groupby(["tensor", "_e"], sort=False)}
    scores = np.full(len(control), np.nan)
    for key, idx in control.assign(_e=c_e).groupby(["tensor", "_e"], sort=False).indices.items():
        src = by_matrix.get(key)
        if src is None or len(src) != len(idx):
            raise ValueError(f"{key}: control and super set differ in size")
        order = np.argsort(control["rank"].to_numpy()[idx], kind="stable")
        scores[idx[order]] = src
    out["score"] = scores
    return out


__all__ = ["super_set", "random_k", "bottom_k", "borrow_scores", "matrix_geometry", "draw_excluding"]
