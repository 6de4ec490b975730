"""Selections must equal a brute-force full sort (numpy lexsort) on random, tied and NaN scores."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from esa.engine.scoring.select import (COLUMNS, Selector, per_matrix_counts, select_in_tensor, take_per_matrix,
                               topk_in_tensor)
from esa.engine.models.targets import scored_parameters


def _tied_scores(targets, seed, levels=6, nan_frac=0.05, dtype=torch.float64):
    """Few distinct values (many ties, also across matrices) and some NaNs, one tensor per parameter."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in targets:
        if t.name in out:
            continue
        shape = t.parameter.shape
        s = torch.randint(0, levels, shape, generator=g).to(dtype) / levels
        s[torch.rand(shape, generator=g) < nan_frac] = float("nan")
        out[t.name] = s
    return out


def _brute(targets, scores, k, mode, largest=True, nonzero=False):
    """Reference: every eligible weight in a Python-free numpy table, fully sorted."""
    parts = []
    for t in targets:
        s = t.view(scores[t.name]).reshape(-1).double().numpy()
        ok = ~np.isnan(s)
        if largest:  # top-k never takes a zero or infinite score
            ok &= np.isfinite(s) & (s != 0)
        if nonzero:
            ok &= t.weight().reshape(-1).numpy() != 0
        idx = np.nonzero(ok)[0]
        parts.append(pd.DataFrame({"tensor": t.name, "expert": t.expert if t.expert is not None else -1,
                                   "flat_index": idx + t.flat_offset, "score": s[idx],
                                   "row": idx // t.shape[1], "col": idx % t.shape[1]}))
    df = pd.concat(parts, ignore_index=True)
    key = -df["score"].to_numpy() if largest else df["score"].to_numpy()
    if mode == "global":
        order = np.lexsort((df["flat_index"].to_numpy(), df["tensor"].to_numpy(), key))
        out = df.iloc[order[:k]].reset_index(drop=True)
        out["rank"] = np.arange(len(out))
        return out
    out = []
    for (name, e), g in df.groupby(["tensor", "expert"], sort=True):
        o = np.lexsort((g["flat_index"].to_numpy(), -g["score"].to_numpy() if largest else g["score"].to_numpy()))
        sel = g.iloc[o[:k]].copy()
        sel["rank"] = np.arange(len(sel))
        out.append(sel)
    return pd.concat(out, ignore_index=True)


def _compare(res, ref):
    assert list(res.columns) == COLUMNS
    cols = ["tensor", "flat_index", "row", "col", "score", "rank"]
    pd.testing.assert_frame_equal(res[cols].reset_index(drop=True).astype({"tensor": object}),
                                  ref[cols].reset_index(drop=True).astype({"tensor": object}), check_dtype=False)


@pytest.mark.parametrize("mode", ["per_layer", "global"])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("chunk", [1 << 24, 37])
def test_matches_brute_force(tiny_moe, mode, largest, chunk):
    targets = scored_parameters(tiny_moe, include_embeddings=True, include_lm_head=True)
    scores = _tied_scores(targets, seed=1)
    k = 23
    sel = Selector(k, mode, largest=largest, nonzero_only=False, chunk=chunk)
    for t in reversed(targets):  # arrival order must not matter
        sel.add(t, scores[t.name])
    _compare(sel.result(), _brute(targets, scores, k, mode, largest))
    summary = sel.summary()
    assert summary["n_nan"].sum() == sum(int(torch.isnan(s).sum()) for s in scores.values())


def test_dense_model_and_metadata(tiny_llama):
    targets = scored_parameters(tiny_llama)
    scores = _tied_scores(targets, seed=2, levels=1000, nan_frac=0.0)
    sel = Selector(10, "global")
    for t in targets:
        sel.add(t, scores[t.name])
    res = sel.result()
    _compare(res, _brute(targets, scores, 10, "global"))
    by = {t.name: t for t in targets}
    for r in res.itertuples():
        t = by[r.tensor]
        assert r.component == t.component and r.layer == t.layer and pd.isna(r.expert)
        assert float(scores[r.tensor][r.row, r.col]) == r.score


def test_expert_rows_refer_to_slice(tiny_moe):
    targets = [t for t in scored_parameters(tiny_moe) if t.expert is not None]
    scores = _tied_scores(targets, seed=3, levels=10_000, nan_frac=0.0)
    sel = Selector(3, "per_layer")
    for t in targets:
        sel.add(t, scores[t.name])
    res = sel.result()
    assert set(res["expert"].dropna().astype(int)) == {0, 1, 2, 3}
    for r in res.itertuples():
        full = scores[r.tensor]
        assert float(full[r.expert, r.row, r.col]) == r.score
        assert float(full.reshape(-1)[r.flat_index]) == r.score


def test_bottom_k_excludes_zero_weights(tiny_llama):
    targets = scored_parameters(copy.deepcopy(tiny_llama))
    t = targets[0]
    w = t.weight().clone()
    w[:, :3] = 0.0  # these have the lowest scores below
    t.parameter.data.copy_(w)
    score = torch.arange(w.numel(), dtype=torch.float32).reshape(w.shape)
    score[:, :3] = -1.0
    sel = Selector(5, "per_layer", largest=False)
    sel.add(t, score)
    res = sel.result()
    assert (res["col"] >= 3).all() and len(res) == 5
    assert res["score"].is_monotonic_increasing
    # bottom-k keeps per-matrix candidates so a control can match a top-k set's counts
    counts = pd.DataFrame({"tensor": [t.name], "expert": [pd.NA], "n": [2]})
    assert len(take_per_matrix(sel.candidates(), counts)) == 2
    with pytest.raises(ValueError):
        take_per_matrix(sel.candidates(), counts.assign(n=6))


def test_take_per_matrix_matches_topk_counts(tiny_moe):
    targets = scored_parameters(tiny_moe)
    scores = _tied_scores(targets, seed=4, levels=50, nan_frac=0.02)
    top, bottom = Selector(40, "global"), Selector(40, "global", largest=False, nonzero_only=False)
    for t in targets:
        top.add(t, scores[t.name])
        bottom.add(t, scores[t.name])
    counts = per_matrix_counts(top.result())
    control = take_per_matrix(bottom.candidates(), counts)
    pd.testing.assert_frame_equal(per_matrix_counts(control), counts)
    ref = _brute(targets, scores, 40, "per_layer", largest=False)
    ref = ref.merge(counts.assign(expert=counts["expert"].fillna(-1).astype(int)), on=["tensor", "expert"])
    ref = ref[ref["rank"] < ref["n"]]
    assert set(zip(control["tensor"], control["flat_index"])) == set(zip(ref["tensor"], ref["flat_index"]))


def test_topk_in_tensor_ties_nan_and_mask():
    s = torch.tensor([1.0, float("nan"), 3.0, 1.0, 3.0, 1.0, float("-inf")])
    idx, vals = topk_in_tensor(s, 4)
    assert idx.tolist() == [2, 4, 0, 3] and vals.tolist() == [3.0, 3.0, 1.0, 1.0]
    idx, _ = topk_in_tensor(s, 10)
    assert idx.tolist() == [2, 4, 0, 3, 5]  # NaN and ±inf never enter a top-k
    idx, _ = topk_in_tensor(s, 2, largest=False)
    assert idx.tolist() == [6, 0]  # bottom-k: -inf is a real (lowest) score
    mask = torch.tensor([True, True, False, True, True, True, False])
    idx, _ = topk_in_tensor(s, 3, mask=mask)
    assert idx.tolist() == [4, 0, 3]
    sel = select_in_tensor(torch.full((5,), float("nan")), 3)
    assert sel.indices.numel() == 0 and sel.n_nan == 5 and sel.n_eligible == 0
    assert topk_in_tensor(s, 0)[0].numel() == 0


def test_float32_and_float64_agree_without_ties(tiny_llama):
    targets = scored_parameters(tiny_llama, include_lm_head=True)
    g = torch.Generator().manual_seed(5)
    s64 = {t.name: torch.rand(t.parameter.shape, generator=g, dtype=torch.float64) for t in targets}
    s32 = {n: s.float() for n, s in s64.items()}
    all32 = torch.cat([s.reshape(-1) for s in s32.values()])
    assert all32.unique().numel() == all32.numel()  # float32 rounding created no ties
    for mode in ("per_layer", "global"):
        a, b = Selector(15, mode), Selector(15, mode)
        for t in targets:
            a.add(t, s64[t.name])
            b.add(t, s32[t.name])
        ra, rb = a.result(), b.result()
        pd.testing.assert_frame_equal(ra.drop(columns="score"), rb.drop(columns="score"))


def test_add_twice_rejected(tiny_llama):
    t = scored_parameters(tiny_llama)[0]
    sel = Selector(2)
    sel.add(t, torch.rand(t.shape))
    with pytest.raises(ValueError):
        sel.add(t, torch.rand(t.shape))
