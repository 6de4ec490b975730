"""Dose series scale one noise draw; weights that grew/shrank are counted; bit_flip prob is matched per matrix."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.perturbation.controls import random_k, random_matched, super_set
from esa.engine.perturbation.apply import (AdaptiveParams, BitFlipParams, GaussParams, ScaleParams, SignFlipParams, ZeroParams,
                                apply, perturbed)
from esa.engine.perturbation.registry import kept_count
from esa.engine.scoring.select import Selector
from esa.engine.models.targets import scored_parameters


def _direct(values, dtype=torch.float32, shape=(4, 8)):
    w = torch.nn.Parameter(torch.full(shape, 0.25, dtype=dtype))
    flat = np.arange(len(values)) * 3 + 1
    with torch.no_grad():
        w.view(-1)[torch.tensor(flat)] = torch.tensor(values, dtype=dtype)
    sel = pd.DataFrame({"tensor": "w", "expert": pd.array([None] * len(flat), dtype="Int64"), "flat_index": flat,
                        "score": np.linspace(2.0, 1.0, len(flat))})
    return {"w": w}, sel


def _after(params, sel, name, p, seed):
    fi = torch.tensor(sel["flat_index"].to_numpy())
    with perturbed(params, sel, name, p, seed=seed):
        return params["w"].detach().reshape(-1)[fi].clone()


@pytest.mark.parametrize("name, make", [
    ("gauss_noise", lambda level: GaussParams(level)),
    ("gauss_noise", lambda level: GaussParams(level, "tensor_std")),
    ("adaptive", lambda level: AdaptiveParams(level)),
])
def test_noise_is_level_times_one_draw(name, make):
    g = torch.Generator().manual_seed(0)
    values = (torch.randn(10, generator=g, dtype=torch.float64) * 0.1).tolist()
    params, sel = _direct(values, torch.float64)
    old = torch.tensor(values, dtype=torch.float64)
    z = torch.randn(10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    base = {"adaptive": old.abs() * torch.tensor(sel["score"].to_numpy() / 2.0),
            "gauss_noise": old.abs()}[name]
    if make(0.1).__dict__.get("sigma_mode") == "tensor_std":
        base = params["w"].detach().std()
    small, large = _after(params, sel, name, make(0.01), 4), _after(params, sel, name, make(0.02), 4)
    assert torch.equal(small, old + 0.01 * (z * base))  # noise = level · (one N(0,1) draw) · base
    assert torch.equal(large, old + 0.02 * (z * base))
    # the same draw at both levels: level 0.02 moves every weight twice as far as level 0.01
    tol = 1e-12 * old.abs().max()
    assert ((large - old) - 2 * (small - old)).abs().max() <= tol
    other_seed = _after(params, sel, name, make(0.02), 5)
    assert ((other_seed - old) - 2 * (small - old)).abs().max() > 1e3 * tol


def test_grew_shrank_unchanged_hand_computed():
    # fp32 bit 23 is the exponent's lowest bit: set in 1.0, 1.5, -1.25 (exponent 127: halved), clear in 0.75
    # (exponent 126: doubled)
    params, sel = _direct([1.0, 1.5, -1.25, 0.75, 1.0])
    cases = [("bit_flip", BitFlipParams(23), (1, 4, 0)), ("sign_flip", SignFlipParams(), (0, 0, 5)),
             ("zero", ZeroParams(), (0, 5, 0)), ("scale", ScaleParams(2.0), (5, 0, 0)),
             ("scale", ScaleParams(1.0), (0, 0, 5)),
             # top exponent bit: 1.0 → inf (grew), 1.5 and -1.25 → NaN (neither), 0.75 → 0.75·2^128 (grew)
             ("bit_flip", BitFlipParams("exponent_msb"), (3, 0, 0))]
    for name, p, (grew, shrank, same) in cases:
        with perturbed(params, sel, name, p) as applied:
            assert (applied.n_grew, applied.n_shrank, applied.n_unchanged) == (grew, shrank, same), (name, p)
            summary = applied.summary()
            assert (summary["n_grew"], summary["n_shrank"], summary["n_unchanged"]) == (grew, shrank, same)


def test_kept_count_is_round_half_up_and_at_least_one():
    assert [kept_count(0.3, n) for n in (0, 1, 2, 3, 5, 10)] == [0, 1, 1, 1, 2, 3]
    assert [kept_count(0.5, n) for n in (1, 3, 5, 7)] == [1, 2, 3, 4]


def test_bit_flip_fraction_flips_the_same_counts_per_matrix_in_super_set_and_controls():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    sel = Selector(60, "global")
    for t in scored_parameters(model, include_lm_head=True):
        sel.add(t, t.weight().abs())
    sup = super_set(sel.result().assign(metric="m", mode="global"), 60)
    sizes = sup.groupby("tensor").size()
    assert sizes.nunique() > 2  # uneven per-matrix counts: a set-wide draw would not match them
    params = dict(model.named_parameters())
    sets = {"super": sup, "random_k": random_k(sup, params, 1), "random_matched": random_matched(sup, params, 1)}
    expected = {t: kept_count(0.3, n) for t, n in sizes.items()}
    for seed in (0, 1):
        for target, frame in sets.items():
            applied = apply(model, frame, "bit_flip", BitFlipParams("random", prob=0.3), seed=seed)
            counts = {s.tensor: s.index.numel() for s in applied.saved}
            applied.restore()
            assert counts == expected, target
