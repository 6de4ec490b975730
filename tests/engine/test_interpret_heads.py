"""Per-head attention statistics against hand computations, and critical-weight counts per head against a
hand-built table (GQA included)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from esa.engine.interpret.attention import sink_share
from esa.engine.interpret.forward import forward_pass
from esa.engine.interpret.heads import HeadGeometry, critical_head_counts, head_attention_stats
from esa.engine.scoring.gradient_pass import eager_attention
from interpret_tiny import raw, same_bits, tiny


def uniform(model):
    """q = 0 makes every score 0: each query spreads evenly over the keys it sees."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.zero_()
    return model


def test_uniform_attention_gives_log_of_the_visible_keys_and_a_sink_of_one_over_them():
    model = uniform(tiny())
    ids = torch.randint(0, 64, (3, 6), generator=torch.Generator().manual_seed(1))
    stats = head_attention_stats(model, ids)
    assert len(stats) == 4 and stats["n_queries"].eq(3 * 5).all()
    # Queries at positions 1..5 see 2..6 keys.
    assert np.allclose(stats["entropy"], np.mean([math.log(n) for n in range(2, 7)]), atol=1e-6)
    assert np.allclose(stats["uniform_entropy"], np.mean([math.log(n) for n in range(2, 7)]), atol=1e-6)
    assert np.allclose(stats["sink_share"], np.mean([1 / n for n in range(2, 7)]), atol=1e-6)


def test_a_mask_leaves_padded_queries_out():
    model = uniform(tiny())
    ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    stats = head_attention_stats(model, ids, mask, batch_size=1)
    seen = list(range(2, 7)) + [2, 3]  # the second window's real queries 1, 2 see 2, 3 keys
    assert stats["n_queries"].eq(7).all()
    assert np.allclose(stats["entropy"], np.mean([math.log(n) for n in seen]), atol=1e-6)
    assert np.allclose(stats["sink_share"], np.mean([1 / n for n in seen]), atol=1e-6)
    with pytest.raises(ValueError, match="pad on the right"):
        head_attention_stats(model, ids, mask.flip(1))


def test_entropy_and_sink_match_a_hand_computation_on_the_returned_probabilities():
    model = tiny(seed=3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(30)  # peaked, head-specific attention
            layer.self_attn.k_proj.weight.mul_(30)
    ids = torch.randint(0, 64, (4, 7), generator=torch.Generator().manual_seed(3))
    before = raw(model)
    stats = head_attention_stats(model, ids, batch_size=3).set_index(["layer", "head"])
    assert same_bits(before, raw(model)) and model.config._attn_implementation == "sdpa"
    with torch.no_grad(), eager_attention(model):
        probs = model(ids, output_attentions=True).attentions
    for layer, p in enumerate(probs):
        p = p.double().numpy()
        assert sink_share(torch.from_numpy(p)) == pytest.approx(p[:, :, 1:, 0].mean(), rel=1e-9)
        for head in range(2):
            ent = [-sum(x * math.log(x) for x in p[b, head, t, : t + 1] if x > 0) for b in range(4)
                   for t in range(1, 7)]
            assert stats.loc[(layer, head), "entropy"] == pytest.approx(np.mean(ent), rel=1e-5)
            assert stats.loc[(layer, head), "sink_share"] == pytest.approx(p[:, head, 1:, 0].mean(), rel=1e-5)
    spread = stats["entropy"].max() - stats["entropy"].min()
    assert spread > 0.3  # the check above compares heads that differ


def test_the_forward_pass_keeps_the_residual_before_the_final_norm():
    model = tiny()
    ids = torch.arange(5)[None]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    kept = forward_pass(model, ids, attentions=False).residuals
    assert torch.allclose(kept[0], out.hidden_states[1])
    assert torch.allclose(model.model.norm(kept[1]), out.hidden_states[2])


def table(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["tensor", "row", "col"])


def test_head_counts_follow_rows_for_qkv_and_columns_for_o():
    geo = HeadGeometry(n_layers=2, n_heads=2, n_kv_heads=2, head_dim=8)
    t = table([("model.layers.0.self_attn.q_proj.weight", 3, 15), ("model.layers.0.self_attn.q_proj.weight", 8, 0),
               ("model.layers.0.self_attn.q_proj.weight", 15, 2), ("model.layers.1.self_attn.k_proj.weight", 7, 9),
               ("model.layers.1.self_attn.v_proj.weight", 9, 1), ("model.layers.1.self_attn.o_proj.weight", 1, 12),
               ("model.layers.1.self_attn.o_proj.weight", 14, 7), ("model.layers.1.mlp.down_proj.weight", 0, 0)])
    got = critical_head_counts(t, geo).set_index(["layer", "head"])
    want = {(0, 0): (1, 0, 0, 0), (0, 1): (2, 0, 0, 0), (1, 0): (0, 1, 0, 1), (1, 1): (0, 0, 1, 1)}
    for key, (q, k, v, o) in want.items():
        assert tuple(got.loc[key, ["q", "k", "v", "o"]]) == (q, k, v, o), key
        assert got.loc[key, "total"] == q + k + v + o


def test_gqa_counts_a_kv_weight_for_every_query_head_of_its_group():
    # 4 query heads share 2 KV heads: heads 0, 1 read KV head 0; heads 2, 3 read KV head 1. head_dim 4.
    geo = HeadGeometry(n_layers=1, n_heads=4, n_kv_heads=2, head_dim=4)
    t = table([("model.layers.0.self_attn.k_proj.weight", 5, 0),  # KV head 1
               ("model.layers.0.self_attn.k_proj.weight", 6, 3),  # KV head 1
               ("model.layers.0.self_attn.v_proj.weight", 2, 0),  # KV head 0
               ("model.layers.0.self_attn.q_proj.weight", 13, 0),  # query head 3
               ("model.layers.0.self_attn.o_proj.weight", 0, 9)])  # query head 2
    got = critical_head_counts(t, geo).set_index("head")
    assert got["kv_head"].tolist() == [0, 0, 1, 1]
    assert got["k"].tolist() == [0, 0, 2, 2]
    assert got["v"].tolist() == [1, 1, 0, 0]
    assert got["q"].tolist() == [0, 0, 0, 1]
    assert got["o"].tolist() == [0, 0, 1, 0]
    assert got["total"].tolist() == [1, 1, 3, 3]


def test_geometry_comes_from_the_config_and_bad_tables_are_refused():
    geo = HeadGeometry.of(tiny(heads=4, kv_heads=2))
    assert geo == HeadGeometry(n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4) and geo.group == 2
    with pytest.raises(ValueError, match="outside"):
        critical_head_counts(table([("model.layers.0.self_attn.k_proj.weight", 8, 0)]), geo)  # only 2 KV heads
    with pytest.raises(ValueError, match="fused"):
        critical_head_counts(table([("transformer.h.0.attn.c_attn.weight", 0, 0)]), geo)
    empty = critical_head_counts(table([("model.layers.0.mlp.up_proj.weight", 0, 0)]), geo)
    assert len(empty) == 8 and empty["total"].eq(0).all()
