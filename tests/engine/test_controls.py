"""Controls: the super set's per-matrix counts exactly, never a super weight, reproducible per seed."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.perturbation.controls import borrow_scores, bottom_k, draw_excluding, random_k, super_set
from esa.engine.scoring.select import COLUMNS, Selector, per_matrix_counts
from esa.engine.models.targets import scored_parameters


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def _topk(model, k, mode="per_layer", largest=True, **kw):
    """Magnitude top-k (or bottom-k candidates) as the scoring stage writes them."""
    sel = Selector(k, mode, largest=largest, **kw)
    for t in scored_parameters(model, include_lm_head=True):
        sel.add(t, t.weight().abs())
    out = sel.result() if largest else sel.candidates()
    out.insert(0, "metric", "magnitude")
    if largest:
        out.insert(1, "mode", mode)
    return out


def _keys(df):
    return set(zip(df["tensor"], df["expert"].fillna(-1).astype(int), df["flat_index"]))


def _counts(df):
    return per_matrix_counts(df).assign(expert=lambda d: d["expert"].fillna(-1).astype(int))


def test_super_set_cuts_to_k_and_checks_metric(llama):
    top = pd.concat([_topk(llama, 5), _topk(llama, 40, "global")], ignore_index=True)
    s = super_set(top, 3, mode="per_layer")
    assert (_counts(s)["n"] == 3).all() and len(s) == 3 * len(scored_parameters(llama, include_lm_head=True))
    g = super_set(top, 7, mode="global")
    assert len(g) == 7 and set(g["rank"]) == set(range(7))
    with pytest.raises(ValueError, match="mode"):
        super_set(top, 3)


def test_random_k_matches_counts_excludes_super_and_is_seeded(llama):
    params = dict(llama.named_parameters())
    s = super_set(_topk(llama, 40, "global"), 40)
    assert len(_counts(s)) > 1 and _counts(s)["n"].nunique() > 1  # uneven counts across matrices
    a, b, c = random_k(s, params, 1), random_k(s, params, 1), random_k(s, params, 2)
    for ctrl in (a, c):
        assert list(ctrl.columns) == list(s.columns)
        pd.testing.assert_frame_equal(_counts(ctrl), _counts(s))
        assert not _keys(ctrl) & _keys(s)
        assert not ctrl.duplicated(["tensor", "flat_index"]).any()
        cols = ctrl["tensor"].map(lambda n: params[n].shape[1]).to_numpy()
        np.testing.assert_array_equal(ctrl["row"] * cols + ctrl["col"], ctrl["flat_index"])
        assert ctrl["score"].isna().all() and (ctrl["metric"] == "magnitude").all()
    pd.testing.assert_frame_equal(a, b)
    assert _keys(a) != _keys(c)


def test_random_k_is_uniform_over_the_complement():
    w = torch.nn.Parameter(torch.randn(10, 10))
    excl = np.array([0, 11, 22, 33, 99])
    sup = pd.DataFrame({"tensor": "w", "layer": pd.array([0] * 5, dtype="Int64"), "component": "mlp_down",
                        "expert": pd.array([None] * 5, dtype="Int64"), "row": excl // 10, "col": excl % 10,
                        "flat_index": excl, "score": 1.0, "rank": np.arange(5)})
    hits = np.zeros(100)
    for seed in range(400):
        np.add.at(hits, random_k(sup, {"w": w}, seed)["flat_index"].to_numpy(), 1)
    assert hits[excl].sum() == 0
    rest = np.delete(hits, excl)
    # 400 draws x 5 over 95 cells: mean 21.05, sd ~4.5
    assert rest.sum() == 2000 and rest.min() > 5 and rest.max() < 40


def test_random_k_on_large_matrices_and_expert_slices():
    g = torch.Generator().manual_seed(0)  # non-zero weights: random_k never draws a zero
    big = torch.nn.Parameter(torch.randn(300, 400, generator=g))  # beyond the small-matrix path: rejection sampling
    packed = torch.nn.Parameter(torch.randn(3, 6, 5, generator=g))
    sup = pd.DataFrame({"tensor": ["big"] * 3 + ["packed"] * 2, "layer": pd.array([0] * 5, dtype="Int64"),
                        "component": "mlp_down", "expert": pd.array([None, None, None, 2, 2], dtype="Int64"),
                        "row": [0, 1, 299, 0, 5], "col": [0, 2, 399, 1, 4],
                        "flat_index": [0, 402, 119999, 60 + 1, 60 + 29], "score": 1.0, "rank": [0, 1, 2, 0, 1]})
    params = {"big": big, "packed": packed}
    ctrl = random_k(sup, params, 7)
    assert len(ctrl) == 5 and not _keys(ctrl) & _keys(sup)
    p = ctrl[ctrl["tensor"] == "packed"]
    assert (p["expert"] == 2).all() and (p["flat_index"] >= 60).all() and (p["flat_index"] < 90).all()
    np.testing.assert_array_equal(p["row"] * 5 + p["col"] + 60, p["flat_index"])
    # heavy exclusion in a large matrix still returns distinct allowed indices
    rng = np.random.default_rng(0)
    excluded = np.arange(1000, 70_000)
    got = draw_excluding(rng, 70_000, 900, excluded)
    assert len(np.unique(got)) == 900 and not np.isin(got, excluded).any()
    with pytest.raises(ValueError):
        draw_excluding(rng, 70_000, 1001, excluded)


def test_bottom_k_counts_lowest_nonzero_and_disjoint(llama):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    s = super_set(_topk(model, 40, "global"), 40)
    cand = _topk(model, 10, largest=False)
    ctrl = bottom_k(s, cand)
    assert list(ctrl.columns) == list(s.columns)
    pd.testing.assert_frame_equal(_counts(ctrl), _counts(s))
    assert not _keys(ctrl) & _keys(s)
    # the lowest |w| of each matrix, in order
    for (name, _), g in ctrl.groupby(["tensor", "expert"], dropna=False):
        w = params[name].detach().abs().reshape(-1).double()
        lowest = torch.sort(w).values[: len(g)].numpy()
        np.testing.assert_array_equal(np.sort(g["score"].to_numpy()), lowest)
    # a candidate list that contains super weights: they are dropped, the next candidates move up
    sup_rows = s.drop(columns="mode").assign(rank=-1)
    mixed = pd.concat([sup_rows, cand], ignore_index=True)
    ctrl2 = bottom_k(s, mixed)
    assert not _keys(ctrl2) & _keys(s)
    pd.testing.assert_frame_equal(ctrl2.reset_index(drop=True), ctrl.reset_index(drop=True))


def test_bottom_k_excludes_zero_weights_and_raises_when_short(llama):
    model = copy.deepcopy(llama)
    params = dict(model.named_parameters())
    down = "model.layers.0.mlp.down_proj.weight"
    with torch.no_grad():
        params[down][:, :4] = 0.0
    cand = _topk(model, 6, largest=False)
    s = super_set(_topk(model, 2), 2)
    ctrl = bottom_k(s, cand)
    for r in ctrl.itertuples():
        assert params[r.tensor].reshape(-1)[r.flat_index].item() != 0.0
    assert (ctrl[ctrl["tensor"] == down]["col"] >= 4).all()
    # candidates taken while the weights were non-zero: params= drops the ones that are zero now
    with torch.no_grad():
        zeroed = ctrl[ctrl["tensor"] == down]["flat_index"].to_numpy()
        params[down].view(-1)[torch.tensor(zeroed)] = 0.0
    ctrl2 = bottom_k(s, cand, params)
    assert not set(zeroed) & set(ctrl2[ctrl2["tensor"] == down]["flat_index"])
    assert len(ctrl2) == len(s)
    with pytest.raises(ValueError, match="too few candidates"):
        bottom_k(super_set(_topk(model, 7), 7), cand)


def test_borrow_scores_gives_each_matrix_the_super_sets_scores(llama):
    s = super_set(_topk(llama, 40, "global"), 40)
    ctrl = borrow_scores(random_k(s, dict(llama.named_parameters()), 3), s)
    for key, g in ctrl.groupby(["tensor", "expert"], dropna=False):
        ref = s[(s["tensor"] == key[0])]["score"].sort_values(ascending=False).to_numpy()
        np.testing.assert_array_equal(g.sort_values("rank")["score"].to_numpy(), ref)
    assert list(COLUMNS) == [c for c in ctrl.columns if c in COLUMNS]


def test_super_set_refuses_a_k_beyond_what_was_stored(llama):
    top = pd.concat([_topk(llama, 5), _topk(llama, 40, "global")], ignore_index=True)
    assert len(super_set(top, 5, mode="per_layer")) == 5 * len(scored_parameters(llama, include_lm_head=True))
    assert len(super_set(top, 40, mode="global")) == 40
    for k, mode, stored in ((6, "per_layer", 5), (41, "global", 40)):
        with pytest.raises(ValueError, match=f"k={k} exceeds the {stored} ") as err:
            super_set(top, k, mode=mode)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no selected weights"):  # e.g. a detector that found nothing
        super_set(top.iloc[:0], 1)


def _sparse_matrix(shape, nonzero_every, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    w.view(-1)[torch.arange(w.numel()) % nonzero_every != 0] = 0.0
    return torch.nn.Parameter(w)


def _rows(name, flat, cols):
    flat = np.asarray(flat)
    return pd.DataFrame({"tensor": name, "layer": pd.array([0] * len(flat), dtype="Int64"), "component": "mlp_down",
                         "expert": pd.array([None] * len(flat), dtype="Int64"), "row": flat // cols,
                         "col": flat % cols, "flat_index": flat, "score": 1.0, "rank": np.arange(len(flat))})


def test_random_k_never_draws_a_zero_weight():
    small = _sparse_matrix((10, 10), 10)  # non-zero: flat 0, 10, ..., 90
    sup = _rows("w", [0, 10, 20], 10)
    seen = set()
    for seed in range(60):
        got = random_k(sup, {"w": small}, seed)["flat_index"].tolist()
        assert set(got) <= {30, 40, 50, 60, 70, 80, 90} and len(set(got)) == 3
        seen |= set(got)
    assert seen == {30, 40, 50, 60, 70, 80, 90}
    with pytest.raises(ValueError, match="cannot draw 8 weights from the 2 eligible"):  # 8 super weights leave 2
        random_k(_rows("w", [0, 10, 20, 30, 40, 50, 60, 70], 10), {"w": small}, 0)
    big = _sparse_matrix((300, 400), 2)  # rejection-sampling path, half the weights zero
    picks = random_k(_rows("big", [0, 2, 4, 6], 400), {"big": big}, 3)["flat_index"].to_numpy()
    assert (big.detach().view(-1)[torch.tensor(picks)] != 0).all() and len(set(picks)) == 4
