"""Zeroing the top-k weights of each matrix and a matched random control: the right weights, the same counts, never
a selected or zero weight, uniform draws, and a bit-exact restore."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from esa.engine.interpret import ablate
from esa.engine.interpret.ablate import ablate_topk, ablated, complete, matched_random, topk_per_matrix
from interpret_tiny import raw, same_bits, tiny

Q = "model.layers.0.self_attn.q_proj.weight"  # 16 x 16
DOWN = "model.layers.1.mlp.down_proj.weight"  # 16 x 32


def topk_table(model) -> pd.DataFrame:
    """A per-layer top-k table in the project's layout: 3 ranked weights in each of two matrices."""
    rows = [(Q, 0, 2, 5, 0.9, 0), (Q, 0, 7, 1, 0.8, 1), (Q, 0, 0, 0, 0.7, 2),
            (DOWN, 1, 3, 5, 0.6, 0), (DOWN, 1, 15, 31, 0.5, 1), (DOWN, 1, 4, 4, 0.4, 2)]
    df = pd.DataFrame(rows, columns=["tensor", "layer", "row", "col", "score", "rank"])
    return complete(df.assign(metric="grad_x_weight", mode="per_layer"), model)


def test_complete_fills_the_columns_a_selection_needs():
    df = topk_table(tiny())
    assert df["component"].tolist() == ["attn_q"] * 3 + ["mlp_down"] * 3
    assert df["flat_index"].tolist() == [2 * 16 + 5, 7 * 16 + 1, 0, 3 * 32 + 5, 15 * 32 + 31, 4 * 32 + 4]
    assert df["expert"].isna().all()


def test_topk_per_matrix_takes_the_first_k_by_rank_of_each_matrix():
    df = topk_table(tiny()).sample(frac=1.0, random_state=0)  # row order must not matter
    two = topk_per_matrix(df, 2)
    assert sorted(zip(two["tensor"], two["row"], two["col"])) == sorted(
        [(Q, 2, 5), (Q, 7, 1), (DOWN, 3, 5), (DOWN, 15, 31)])
    by_component = topk_per_matrix(df, {"mlp_down": 1})
    assert list(zip(by_component["tensor"], by_component["row"], by_component["col"])) == [(DOWN, 3, 5)]
    assert len(topk_per_matrix(df, 10)) == 6
    bare = topk_per_matrix(df.drop(columns="component"), {"attn_q": 1})  # the component comes from the name
    assert list(zip(bare["tensor"], bare["row"], bare["col"])) == [(Q, 2, 5)]
    with pytest.raises(ValueError, match="metric"):
        topk_per_matrix(pd.concat([df, df.assign(metric="obd")]), 1)


def test_ablate_topk_zeroes_exactly_the_chosen_weights_and_restores_every_bit():
    model = tiny()
    before = raw(model)
    with ablate_topk(model, topk_table(model), 2) as applied:
        now = raw(model)
        assert applied.n_touched == 4
        for name in before:
            changed = sorted(torch.nonzero(before[name] != now[name]).reshape(-1).tolist())
            want = {Q: [7 * 16 + 1, 2 * 16 + 5], DOWN: [3 * 32 + 5, 15 * 32 + 31]}.get(name, [])
            assert changed == sorted(want), name
        assert float(model.get_parameter(Q).detach()[2, 5]) == 0.0
    assert same_bits(before, raw(model))


def test_a_table_without_flat_indices_is_completed_from_row_and_col():
    model = tiny()
    bare = pd.DataFrame({"tensor": [DOWN], "row": [3], "col": [5]})
    with ablated(model, bare) as applied:
        assert applied.n_touched == 1 and float(model.get_parameter(DOWN).detach()[3, 5]) == 0.0


def test_the_random_control_matches_counts_and_never_takes_a_selected_or_zero_weight():
    model = tiny()
    with torch.no_grad():
        model.get_parameter(DOWN)[:, :16] = 0.0  # half the matrix is zero: never eligible
    before = raw(model)
    selection = topk_per_matrix(topk_table(model), 3)
    chosen = set(zip(selection["tensor"], selection["flat_index"]))
    for seed in range(20):
        control = matched_random(model, selection, torch.Generator().manual_seed(seed))
        assert control.groupby("tensor").size().to_dict() == {Q: 3, DOWN: 3}
        assert not chosen & set(zip(control["tensor"], control["flat_index"]))
        assert not control.duplicated(["tensor", "flat_index"]).any()
        down = control[control["tensor"] == DOWN]
        assert (down["col"] >= 16).all()
        assert (control["row"] * np.where(control["tensor"] == Q, 16, 32) + control["col"]
                == control["flat_index"]).all()
        with ablated(model, control) as applied:
            assert applied.n_touched == applied.n_changed == 6
        assert same_bits(before, raw(model))
    one = matched_random(model, selection, torch.Generator().manual_seed(1))
    again = matched_random(model, selection, torch.Generator().manual_seed(1))
    other = matched_random(model, selection, torch.Generator().manual_seed(2))
    assert one["flat_index"].tolist() == again["flat_index"].tolist() != other["flat_index"].tolist()


@pytest.mark.parametrize("pool_limit", [ablate.POOL_LIMIT, 8])  # 8: every matrix takes the rejection path
def test_random_draws_are_uniform_over_the_eligible_weights(monkeypatch, pool_limit):
    monkeypatch.setattr(ablate, "POOL_LIMIT", pool_limit)
    model = tiny()
    selection = topk_per_matrix(topk_table(model), 3)
    selection = selection[selection["tensor"] == Q]
    hits = np.zeros(256, dtype=np.int64)
    generator = torch.Generator().manual_seed(0)  # one generator across draws: each draw continues the stream
    for _ in range(1000):
        control = matched_random(model, selection, generator)
        np.add.at(hits, control["flat_index"].to_numpy(), 1)
    selected = selection["flat_index"].to_numpy()
    assert (hits[selected] == 0).all()
    eligible = np.delete(hits, selected)
    assert eligible.sum() == 1000 * 3 and (eligible > 0).all()
    assert stats.chisquare(eligible).pvalue > 1e-3
