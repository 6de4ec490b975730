"""Deterministic, tie-safe top-k / bottom-k selection, per weight matrix or across all of them.

Order is total and reproducible: within a matrix (score desc, flat index asc) for top-k (score asc, flat index
asc for bottom-k); across matrices (score, then tensor name asc, then flat index asc). Ties at the boundary go to
the lowest flat index; torch.topk is only used to find the k-th value, never for its tie order. NaN scores are
never selected and are counted. Top-k never selects a zero or infinite score: a detector that found nothing
scores every weight 0, and a selection built from those would be an index tie-break, not a finding. Bottom-k
keeps zero and infinite scores (they are genuinely lowest/highest) and only drops weights that are zero.

Each selection records its boundary: the k-th value, how many eligible entries share it and how many of those
were taken. When more than ``TIE_LEFT_OUT`` tied entries are left out, which ones made the cut is arbitrary and
``boundary_in_tie_block`` says so. Work is done on the score's device, chunk by chunk, so no step holds more than
one chunk's copy of a tensor; what crosses to the host is O(k) per matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np
import pandas as pd
import torch

from esa.engine.models.targets import Target
from esa.names import MODES

CHUNK = 1 << 24  # elements per on-device pass; bounds the temporary copies of huge matrices
COLUMNS = ["tensor", "layer", "component", "expert", "row", "col", "flat_index", "score", "rank"]
Mode = Literal[MODES]
TIE_LEFT_OUT = 1  # a boundary is flagged when more tied entries than this are left out


@dataclass
class TensorSelection:
    """Selected flat indices of one tensor (on its device), their scores in order, and what was excluded."""

    indices: torch.Tensor
    values: torch.Tensor
    n_nan: int
    n_eligible: int  # not NaN, inside the mask, non-zero weight where asked; top-k: score finite and non-zero
    n_inf: int = 0  # ±inf scores (never eligible for top-k)
    n_zero: int = 0  # zero scores (never eligible for top-k)
    n_tied: int = 0  # eligible entries equal to the k-th selected value
    n_tied_taken: int = 0  # how many of those were selected

    @property
    def kth(self) -> float:
        return float(self.values[-1]) if self.values.numel() else float("nan")

    @property
    def boundary_in_tie_block(self) -> bool:
        return self.n_tied - self.n_tied_taken > TIE_LEFT_OUT


def _eligible(s: torch.Tensor, mask: torch.Tensor | None, nonzero: torch.Tensor | None, lo: int, hi: int,
              largest: bool, nan: torch.Tensor | None = None) -> torch.Tensor:
    ok = ~(torch.isnan(s) if nan is None else nan)
    if largest:
        ok &= torch.isfinite(s) & (s != 0)
    if mask is not None:
        ok &= mask[lo:hi].to(s.device, torch.bool)
    if nonzero is not None:
        ok &= (nonzero[lo:hi] != 0).to(s.device)
    return ok


def select_in_tensor(score: torch.Tensor, k: int, largest: bool = True, mask: torch.Tensor | None = None,
                     nonzero: torch.Tensor | None = None, chunk: int = CHUNK) -> TensorSelection:
    """The k best eligible entries of ``score`` (any shape; indices are into its flattened form).

    ``mask`` (bool, same shape) restricts the candidates; ``nonzero`` (a weight tensor, same shape) keeps only
    entries whose weight is non-zero (bottom-k). Top-k (``largest``) never takes a zero or ±inf score. Returns
    fewer than k when fewer are eligible.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    with torch.no_grad():
        return _select(score.detach(), k, largest, mask, nonzero, chunk)


def _select(score, k, largest, mask, nonzero, chunk) -> TensorSelection:
    flat = score.reshape(-1)
    mflat = None if mask is None else mask.reshape(-1)
    wflat = None if nonzero is None else nonzero.reshape(-1)
    for other, label in ((mflat, "mask"), (wflat, "nonzero")):
        if other is not None and other.numel() != flat.numel():
            raise ValueError(f"{label} has {other.numel()} elements, score has {flat.numel()}")
    n = flat.numel()
    fill = float("-inf") if largest else float("inf")
    better = torch.gt if largest else torch.lt
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]

    # Pass 1: per-chunk top-k values (ineligible entries pushed to the far end) and counts.
    candidates, n_nan, n_eligible, n_inf, n_zero = [], 0, 0, 0, 0
    for lo, hi in bounds:
        s = flat[lo:hi]
        nan = torch.isnan(s)
        ok = _eligible(s, mflat, wflat, lo, hi, largest, nan)
        n_nan += int(nan.sum())
        n_inf += int(torch.isinf(s).sum())
        n_zero += int((s == 0).sum())
        n_eligible += int(ok.sum())
        if k > 0:
            filled = torch.where(ok, s, torch.tensor(fill, dtype=s.dtype, device=s.device))
            candidates.append(torch.topk(filled, min(k, hi - lo), largest=largest, sorted=False).values)
    k_eff = min(k, n_eligible)
    if k_eff == 0:
        return TensorSelection(torch.empty(0, dtype=torch.long, device=flat.device), flat[:0], n_nan, n_eligible,
                               n_inf, n_zero)

    # The k-th best value over all chunks; everything strictly better than it is among the chunk candidates
    # (fewer than k of them exist), so their count is exact. Ineligible fills are never strictly better.
    pool = torch.cat(candidates)
    kth = torch.topk(pool, k_eff, largest=largest, sorted=True).values[-1]
    need = k_eff - int(better(pool, kth).sum())
    n_tied_taken = need

    # Pass 2: all strictly-better entries, then the lowest-index ties until k_eff are taken.
    picked, n_tied = [], 0
    for lo, hi in bounds:
        s = flat[lo:hi]
        ok = _eligible(s, mflat, wflat, lo, hi, largest)
        picked.append(torch.nonzero(better(s, kth) & ok).flatten() + lo)
        tie = (s == kth) & ok
        n_chunk_ties = int(tie.sum())
        n_tied += n_chunk_ties
        if need > 0:
            # nonzero_static: only the first `need` tie positions are materialised, however many ties exist.
            ties = torch.nonzero_static(tie, size=min(need, n_chunk_ties)).flatten() + lo
            picked.append(ties)
            need -= ties.numel()
    idx = torch.cat(picked)
    idx = torch.sort(idx).values
    vals = flat[idx]
    order = torch.sort(vals, descending=largest, stable=True).indices
    return TensorSelection(idx[order], vals[order], n_nan, n_eligible, n_inf, n_zero, n_tied, n_tied_taken)


def topk_in_tensor(score: torch.Tensor, k: int, largest: bool = True,
                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flat indices, values)`` of the k best eligible entries, ordered (score, flat index asc)."""
    sel = select_in_tensor(score, k, largest=largest, mask=mask)
    return sel.indices, sel.values


def _order(score: np.ndarray, tensor_rank: np.ndarray, flat: np.ndarray, largest: bool) -> np.ndarray:
    """Global order: score (desc for top, asc for bottom), then tensor name asc, then flat index asc."""
    return np.lexsort((flat, tensor_rank, -score if largest else score))


@dataclass
class _Block:
    """One matrix's selection on the host."""

    target: Target
    tid: int  # position of the target in the selector's arrival list
    flat: np.ndarray  # index into the flattened parameter (expert offset included)
    row: np.ndarray
    col: np.ndarray
    score: np.ndarray  # float64: exact for bf16/fp16/fp32 scores


class Selector:
    """Streaming top-k (or bottom-k) over targets: ``add`` one score tensor at a time, then ``result``.

    ``per_layer`` keeps k per matrix (an expert slice is a matrix); ``global`` keeps the k best overall by a
    streaming merge of per-matrix top-k. Bottom-k (``largest=False``) only considers weights w ≠ 0 by default.
    ``keep_candidates`` (default: on for bottom-k and per_layer) keeps each matrix's own ordered k best, so a
    control can later take the first n of each matrix (``take_per_matrix``).

    The global boundary's tie block is counted while streaming: ``_left_out`` holds, per matrix, the entries equal
    to the current k-th value that are not in the merged set (dropped by the tie-break, or never a matrix
    candidate). The k-th value only improves as matrices arrive; when it does, earlier left-outs are worse than it
    and the count restarts.
    """

    def __init__(self, k: int, mode: Mode = "per_layer", largest: bool = True, nonzero_only: bool | None = None,
                 keep_candidates: bool | None = None, chunk: int = CHUNK):
        if mode not in MODES:
            raise ValueError(f"unknown selection mode '{mode}' (expected {' or '.join(MODES)})")
        self.k, self.mode, self.largest, self.chunk = k, mode, largest, chunk
        self.nonzero_only = (not largest) if nonzero_only is None else nonzero_only
        self.keep_candidates = (mode == "per_layer" or not largest) if keep_candidates is None else keep_candidates
        self._blocks: list[_Block] = []
        self._seen: set[str] = set()
        self._stats: list[dict] = []
        self._targets: list[Target] = []
        self._global: dict[str, np.ndarray] | None = None  # tid, row, col, flat_index, score
        self._left_out: dict[int, int] = {}

    def add(self, target: Target, score: torch.Tensor) -> None:
        """Select from one target's score (shaped like the parameter or like the target's 2-D slice)."""
        if target.key in self._seen:
            raise ValueError(f"target {target.key} added twice")
        self._seen.add(target.key)
        s = target.view(score)
        w = target.weight() if self.nonzero_only else None
        sel = select_in_tensor(s, self.k, largest=self.largest, nonzero=w, chunk=self.chunk)
        idx = sel.indices.cpu().numpy().astype(np.int64)
        cols = target.shape[1]
        self._targets.append(target)
        block = _Block(target, len(self._targets) - 1, idx + target.flat_offset, idx // cols, idx % cols,
                       sel.values.to(torch.float64).cpu().numpy())
        self._stats.append({"tensor": target.name, "layer": target.layer, "component": target.component,
                            "expert": target.expert, "numel": target.numel, "n_nan": sel.n_nan,
                            "n_eligible": sel.n_eligible, "n_candidates": len(idx), "n_inf": sel.n_inf,
                            "n_zero_score": sel.n_zero, "kth_value": sel.kth, "n_tied_at_boundary": sel.n_tied,
                            "n_tied_taken": sel.n_tied_taken})
        if self.keep_candidates:
            self._blocks.append(block)
        if self.mode == "global":
            self._merge(block, sel.n_tied - sel.n_tied_taken)

    def _merge(self, block: _Block, never_candidates: int) -> None:
        new = {"tid": np.full(len(block.flat), block.tid, dtype=np.int64), "row": block.row, "col": block.col,
               "flat_index": block.flat, "score": block.score}
        old_kth = self._global["score"][-1] if self._global is not None and len(self._global["score"]) == self.k \
            else None
        cur = new if self._global is None else {c: np.concatenate([self._global[c], new[c]]) for c in new}
        # Tensor names enter the order through their rank among all names seen so far (integers sort fast).
        names = np.array([t.name for t in self._targets], dtype=object)
        name_rank = np.unique(names, return_inverse=True)[1]
        order = _order(cur["score"], name_rank[cur["tid"]], cur["flat_index"], self.largest)
        keep, dropped = order[: self.k], order[self.k:]
        self._global = {c: v[keep] for c, v in cur.items()}
        if len(keep) < self.k:  # not full: every eligible entry seen so far is taken
            return
        kth = cur["score"][keep[-1]]
        if old_kth is None or old_kth != kth:
            self._left_out = {}
        for tid in cur["tid"][dropped][cur["score"][dropped] == kth].tolist():
            self._left_out[tid] = self._left_out.get(tid, 0) + 1
        if never_candidates and block.score[-1] == kth:
            self._left_out[block.tid] = self._left_out.get(block.tid, 0) + never_candidates

    def result(self) -> pd.DataFrame:
        """One row per selected weight (columns ``COLUMNS``), in deterministic order."""
        if self.mode == "per_layer":
            return self.candidates()
        if self._global is None:
            return _frame({c: np.array([], dtype=object) for c in COLUMNS[:-1]}, np.array([], dtype=np.int64))
        g = self._global
        meta = {c: np.array([getattr(self._targets[i], c) for i in g["tid"]], dtype=object)
                for c in ("layer", "component", "expert")}
        meta["tensor"] = np.array([self._targets[i].name for i in g["tid"]], dtype=object)
        return _frame({**meta, **g}, np.arange(len(g["score"]), dtype=np.int64))

    def candidates(self) -> pd.DataFrame:
        """Each matrix's own ordered selection (rank per matrix), matrices by tensor name then expert."""
        if not self.keep_candidates:
            raise RuntimeError("candidates were not kept (keep_candidates=False)")
        blocks = sorted(self._blocks, key=lambda b: (b.target.name, b.target.expert or 0))
        parts = [_block_columns(b) for b in blocks]
        cols = {c: np.concatenate([p[c] for p in parts]) if parts else np.array([], dtype=object)
                for c in COLUMNS[:-1]}
        rank = np.concatenate([np.arange(len(b.flat), dtype=np.int64) for b in blocks]) if blocks else \
            np.array([], dtype=np.int64)
        return _frame(cols, rank)

    def summary(self) -> pd.DataFrame:
        """Per matrix: size, NaN/inf/zero-score counts, eligible count, candidates kept, selected, and the boundary.

        Boundary columns: ``kth_value``, ``n_tied_at_boundary`` (eligible entries equal to it), ``n_tied_taken``
        and ``boundary_in_tie_block`` (more than ``TIE_LEFT_OUT`` of them left out). per_layer: each matrix's own
        boundary. global: the one global k-th value on every row, each matrix's share of its tie block, and the
        flag of the whole selection.
        """
        df = pd.DataFrame(self._stats, columns=["tensor", "layer", "component", "expert", "numel", "n_nan",
                                                "n_eligible", "n_candidates", "n_inf", "n_zero_score", "kth_value",
                                                "n_tied_at_boundary", "n_tied_taken"])
        if self.mode == "global":
            self._global_boundary(df)
        df["boundary_in_tie_block"] = (df["n_tied_at_boundary"] - df["n_tied_taken"]) > TIE_LEFT_OUT
        if self.mode == "global":
            df["boundary_in_tie_block"] = bool((df["n_tied_at_boundary"] - df["n_tied_taken"]).sum() > TIE_LEFT_OUT)
        df["layer"] = df["layer"].astype("Int64")
        df["expert"] = df["expert"].astype("Int64")
        res = self.result()
        counts = res.groupby(["tensor", "expert"], dropna=False).size().rename("n_selected").reset_index()
        df = df.merge(counts, on=["tensor", "expert"], how="left")
        df["n_selected"] = df["n_selected"].fillna(0).astype(np.int64)
        return df

    def _global_boundary(self, df: pd.DataFrame) -> None:
        """Overwrite the per-matrix boundary columns of ``df`` (rows in arrival order) with the global boundary."""
        g = self._global
        if g is None or not len(g["score"]):
            df["kth_value"], df["n_tied_at_boundary"], df["n_tied_taken"] = np.nan, 0, 0
            return
        kth = g["score"][-1]
        taken = np.bincount(g["tid"][g["score"] == kth], minlength=len(df))
        left = np.array([self._left_out.get(i, 0) for i in range(len(df))], dtype=np.int64)
        df["kth_value"], df["n_tied_taken"], df["n_tied_at_boundary"] = float(kth), taken, taken + left


def _block_columns(b: _Block) -> dict[str, np.ndarray]:
    n, t = len(b.flat), b.target
    meta = {c: np.full(n, v, dtype=object) for c, v in
            (("tensor", t.name), ("layer", t.layer), ("component", t.component), ("expert", t.expert))}
    return {**meta, "row": b.row, "col": b.col, "flat_index": b.flat, "score": b.score}


def _frame(cols: Mapping[str, np.ndarray], rank: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({
        "tensor": pd.Series(cols["tensor"], dtype=str),
        "layer": pd.array(list(cols["layer"]), dtype="Int64"),
        "component": pd.Series(cols["component"], dtype=str),
        "expert": pd.array(list(cols["expert"]), dtype="Int64"),
        "row": np.asarray(cols["row"], dtype=np.int64),
        "col": np.asarray(cols["col"], dtype=np.int64),
        "flat_index": np.asarray(cols["flat_index"], dtype=np.int64),
        "score": np.asarray(cols["score"], dtype=np.float64),
        "rank": rank,
    })
    return df


def per_matrix_counts(selection: pd.DataFrame) -> pd.DataFrame:
    """Rows selected per matrix: columns tensor, expert, n."""
    return selection.groupby(["tensor", "expert"], dropna=False, sort=True).size().rename("n").reset_index()


def take_per_matrix(candidates: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """The first n candidates (by per-matrix rank) of each matrix, n from ``counts`` (tensor, expert, n).

    Used for controls with the same per-matrix counts as a top-k set (bottom-k). Raises when a matrix has
    fewer candidates than asked (e.g. too few non-zero weights), rather than silently returning fewer.
    """
    cand = candidates.copy()
    cand["_e"] = cand["expert"].fillna(-1).astype(np.int64)
    want = counts.copy()
    want["_e"] = want["expert"].fillna(-1).astype(np.int64)
    want = want[want["n"] > 0]
    have = cand.groupby(["tensor", "_e"]).size().rename("have").reset_index()
    check = want.merge(have, on=["tensor", "_e"], how="left").fillna({"have": 0})
    short = check[check["have"] < check["n"]]
    if len(short):
        first = short.iloc[0]
        raise ValueError(f"{len(short)} matrices have too few candidates, e.g. {first['tensor']} "
                         f"(expert {first['expert']}): need {int(first['n'])}, have {int(first['have'])}")
    cand = cand.merge(want[["tensor", "_e", "n"]], on=["tensor", "_e"], how="inner")
    out = cand[cand["rank"] < cand["n"]].drop(columns=["_e", "n"])
    return out.sort_values(["tensor", "expert", "rank"], kind="stable").reset_index(drop=True)


__all__ = ["CHUNK", "COLUMNS", "TIE_LEFT_OUT", "TensorSelection", "select_in_tensor", "topk_in_tensor", "Selector",
           "per_matrix_counts", "take_per_matrix"]
