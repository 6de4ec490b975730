"""Target sets for Phase 3: the super set and its matched controls.

Every control has exactly the super set's number of weights in each matrix (an expert slice is a matrix), so a
difference in damage cannot come from where the weights sit, only from which weights they are:

- ``random_k``: uniform draws without repeats from each matrix's non-zero weights, the super set excluded, from
  the run's seed. Each matrix has its own stream (seed, crc32 of its key), so one matrix's draw does not depend
  on the others. (Zeroing or flipping a weight that is already 0 would be a condition that changes nothing.)
- ``random_matched``: for each super weight, a random non-zero weight of the same matrix with the same binary
  exponent of |w| in the stored dtype; a bucket too small lends from the nearest exponents, and the column
  ``exponent_distance`` says how far each pick is. A bit flip scales a weight by a power of two that depends on its
  exponent, so only a magnitude-matched control makes the comparison about which weights, not how large.
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

from esa.engine.perturbation.bitflip import exponent_field
from esa.engine.scoring.select import per_matrix_counts, take_per_matrix

KEY = ["tensor", "_e", "flat_index"]
# Below this many weights a matrix's eligible entries are listed outright; above it, draws are rejected against
# an on-device eligibility mask instead (no permutation or index list of a big matrix is materialised), unless
# fewer than 1/SPARSE of the matrix is eligible and rejection would mostly miss.
SMALL_MATRIX = 1 << 16
SPARSE = 64


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
    """The super set: rows of one metric/mode with rank < k (per matrix for per_layer, overall for global).

    Refuses a k beyond what the artifact stored (max rank + 1: the selector's k per matrix for per_layer, the
    number of rows for global), since rank < k would then silently return a smaller set than asked for.
    """
    if k <= 0:
        raise ValueError("k must be > 0")
    df = topk
    if metric is not None:
        df = df[df["metric"] == metric]
    if mode is not None:
        df = df[df["mode"] == mode]
    which = f"metric {_only(df, 'metric') or metric}, mode {_only(df, 'mode') or mode}"
    stored = int(df["rank"].max()) + 1 if len(df) else 0
    if stored == 0:
        raise ValueError(f"the top-k artifact has no selected weights for {which} (a zero or undefined score "
                         "selects nothing)")
    if k > stored:
        raise ValueError(f"k={k} exceeds the {stored} weights per selection the top-k artifact stores for {which}")
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


def matrix_rng(seed: int, tensor: str, expert: int, stream: str = "") -> np.random.Generator:
    """The matrix's own stream; ``stream`` separates controls so that they do not share their draws."""
    key = f"{tensor}[{expert}]{':' + stream if stream else ''}"
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode())])


def draw_where(rng: np.random.Generator, ok: torch.Tensor, n: int) -> np.ndarray:
    """n distinct indices i with ``ok[i]`` (a 1-D bool mask, any device), uniformly, in draw order."""
    size, available = ok.numel(), int(ok.sum())
    if n > available:
        raise ValueError(f"cannot draw {n} weights from the {available} eligible ones")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if size <= SMALL_MATRIX or available * SPARSE < size:
        pool = torch.nonzero(ok).flatten().cpu().numpy().astype(np.int64)
        return rng.choice(pool, size=n, replace=False)
    taken: list[int] = []
    seen: set[int] = set()
    while len(taken) < n:
        # Oversample so that a draw usually suffices even with a large ineligible fraction.
        want = n - len(taken)
        batch = rng.integers(0, size, size=int(want * size / available) + 16, dtype=np.int64)
        good = ok[torch.from_numpy(batch).to(ok.device)].cpu().numpy()
        for i in batch[good].tolist():
            if i not in seen:
                seen.add(i)
                taken.append(i)
                if len(taken) == n:
                    break
    return np.asarray(taken, dtype=np.int64)


def draw_excluding(rng: np.random.Generator, size: int, n: int, excluded: np.ndarray) -> np.ndarray:
    """n distinct indices from range(size) minus ``excluded``, uniformly, in draw order."""
    ok = torch.ones(size, dtype=torch.bool)
    ok[torch.as_tensor(np.asarray(excluded, dtype=np.int64))] = False
    return draw_where(rng, ok, n)


def _matrix(params: Mapping[str, torch.Tensor], tensor: str, expert: int | None, group: pd.DataFrame):
    """(flat values of the matrix, its cols, flat offset, the group's local indices in rank order)."""
    if tensor not in params:
        raise KeyError(f"selection names {tensor}, which is not a parameter of the model")
    rows, cols, offset = matrix_geometry(params[tensor], expert)
    ordered = group.sort_values("rank", kind="stable") if "rank" in group.columns else group
    local = ordered["flat_index"].to_numpy(np.int64) - offset
    if (local < 0).any() or (local >= rows * cols).any():
        raise ValueError(f"{tensor} (expert {expert}): flat indices outside the matrix")
    param = params[tensor].detach()
    values = (param[expert] if param.dim() == 3 else param).reshape(-1)
    return values, cols, offset, local


def _candidates(values: torch.Tensor, local: np.ndarray) -> torch.Tensor:
    """Eligible control weights of a matrix: non-zero and not in the super set (a mask on the matrix's device)."""
    ok = values != 0
    ok[torch.as_tensor(local, device=values.device)] = False
    return ok


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


def _random_control(super_df: pd.DataFrame, params: Mapping[str, torch.Tensor], seed: int, stream: str,
                    pick) -> pd.DataFrame:
    """A control drawn matrix by matrix: ``pick(rng, values, local)`` returns the local picks and their exponent
    distances (None when the control does not match exponents)."""
    if not len(super_df):
        return super_df.iloc[:0].copy()
    parts: dict[str, list] = {c: [] for c in ("tensor", "layer", "component", "expert", "row", "col",
                                              "flat_index", "score", "rank", "distance")}
    df = super_df.assign(_e=_expert_key(super_df))
    for (tensor, e), group in df.groupby(["tensor", "_e"], sort=True):
        values, cols, offset, local = _matrix(params, tensor, None if e < 0 else int(e), group)
        try:
            picked, distance = pick(matrix_rng(seed, tensor, int(e), stream), values, local)
        except ValueError as exc:
            raise ValueError(f"{tensor} (expert {None if e < 0 else int(e)}): {exc}") from None
        n = len(picked)
        first = group.iloc[0]
        for col in ("layer", "component", "expert"):
            parts[col] += [first[col]] * n
        parts["tensor"] += [tensor] * n
        parts["row"].append(picked // cols)
        parts["col"].append(picked % cols)
        parts["flat_index"].append(picked + offset)
        parts["score"].append(np.full(n, np.nan))
        parts["rank"].append(np.arange(n, dtype=np.int64))
        if distance is not None:
            parts["distance"].append(distance)
    distances = parts.pop("distance")
    columns = {c: (np.concatenate(v) if isinstance(v[0], np.ndarray) else v) for c, v in parts.items()}
    out = _frame_like(super_df, columns)
    if distances:
        out["exponent_distance"] = np.concatenate(distances).astype(np.int64)
    return out


def random_k(super_df: pd.DataFrame, params: Mapping[str, torch.Tensor], seed: int) -> pd.DataFrame:
    """Uniform random non-zero weights with the super set's per-matrix counts, none of them in the super set."""
    def pick(rng, values, local):
        return draw_where(rng, _candidates(values, local), len(local)), None
    return _random_control(super_df, params, seed, "", pick)


def _matched(rng: np.random.Generator, values: torch.Tensor, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-exponent picks for the super weights ``local`` (rank order); shortfalls from the nearest exponents."""
    ok = _candidates(values, local) & torch.isfinite(values)
    if int(ok.sum()) < len(local):
        raise ValueError(f"cannot draw {len(local)} weights from the {int(ok.sum())} eligible ones")
    expo = exponent_field(values)
    want = expo[torch.as_tensor(local, device=values.device)].cpu().numpy().astype(np.int64)
    picked = np.full(len(local), -1, dtype=np.int64)
    distance = np.zeros(len(local), dtype=np.int64)

    def take(positions: np.ndarray, pool: torch.Tensor, d: int) -> np.ndarray:
        m = min(len(positions), int(pool.sum()))
        got = draw_where(rng, pool, m)
        picked[positions[:m]], distance[positions[:m]] = got, d
        ok[torch.as_tensor(got, device=ok.device)] = False
        return positions[m:]

    # Own buckets first, so a short bucket never takes what a neighbouring exponent's super weights need.
    for e in np.unique(want):
        take(np.flatnonzero(want == e), ok & (expo == int(e)), 0)
    for e in np.unique(want[picked < 0]):
        left = np.flatnonzero((want == e) & (picked < 0))
        while len(left):
            gap = torch.where(ok, (expo - int(e)).abs(), torch.iinfo(torch.int32).max)
            d = int(gap.min())  # the nearest exponent that still has candidates, on either side
            left = take(left, ok & (gap == d), d)
    return picked, distance


def random_matched(super_df: pd.DataFrame, params: Mapping[str, torch.Tensor], seed: int) -> pd.DataFrame:
    """For each super weight a random non-zero weight of its matrix with the same binary exponent of |w|.

    Same per-matrix counts as the super set, no super weight, no repeats; rows follow the super set's rank order
    (row i of a matrix is matched to its i-th super weight). Where an exponent has too few candidates, the rest
    come from the nearest exponents (either side, drawn uniformly from both); ``exponent_distance`` is 0 for an
    exact match and the exponent difference otherwise. Seeded per matrix like ``random_k``, on its own stream.
    """
    return _random_control(super_df, params, seed, "matched", _matched)


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


__all__ = ["super_set", "random_k", "random_matched", "bottom_k", "borrow_scores", "matrix_geometry",
           "draw_excluding", "draw_where"]
