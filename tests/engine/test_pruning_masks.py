"""Pruning masks: exact counts per row and per matrix, deterministic ties and NaN, Wanda by hand, random, protect."""

import math

import pytest
import torch

from esa.engine.pruning.masks import (SAVED_METRIC, _prune_order, protect, prune_mask, pruned_count,
                                      random_scores, scores_for)

NAN = math.nan

# Row 2 is all high, so per-row and whole-matrix selections differ.
SCORE = torch.tensor([[0.5, 0.1, 0.9, 0.3],
                      [0.8, 0.2, 0.4, 0.7],
                      [2.0, 1.5, 3.0, 1.8]])


def positions(mask):
    return sorted(tuple(p) for p in mask.nonzero().tolist())


def test_row_group_prunes_the_lowest_half_of_every_row():
    mask = prune_mask(SCORE, 0.5, "row")
    assert mask.dtype == torch.bool and mask.shape == SCORE.shape
    assert positions(mask) == [(0, 1), (0, 3), (1, 1), (1, 2), (2, 1), (2, 3)]


def test_matrix_group_prunes_the_lowest_half_of_the_matrix():
    mask = prune_mask(SCORE, 0.5, "matrix")
    # 0.1, 0.2, 0.3, 0.4, 0.5, 0.7: nothing from the high row.
    assert positions(mask) == [(0, 0), (0, 1), (0, 3), (1, 1), (1, 2), (1, 3)]


def test_counts_are_floored():
    # 0.4 · 4 columns = 1.6 → 1 per row; 0.4 · 12 = 4.8 → 4 in the matrix.
    assert positions(prune_mask(SCORE, 0.4, "row")) == [(0, 1), (1, 1), (2, 1)]
    assert positions(prune_mask(SCORE, 0.4, "matrix")) == [(0, 1), (0, 3), (1, 1), (1, 2)]


def test_count_reads_the_sparsity_as_written():
    # In binary floats 0.29 · 100 = 28.999999999999996.
    assert pruned_count(0.29, 100) == 29
    score = torch.arange(100, dtype=torch.float32).reshape(10, 10)
    mask = prune_mask(score, 0.29, "matrix")
    assert int(mask.sum()) == 29 and bool(mask.view(-1)[:29].all())


def test_sparsity_zero_prunes_nothing():
    assert not prune_mask(SCORE, 0.0, "row").any()
    assert not prune_mask(SCORE, 0.0, "matrix").any()


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, NAN, True])
def test_sparsity_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="sparsity"):
        prune_mask(SCORE, bad, "row")


def test_shape_and_group_are_checked():
    with pytest.raises(ValueError, match="2-D"):
        prune_mask(torch.ones(4), 0.5, "row")
    with pytest.raises(ValueError, match="group"):
        prune_mask(SCORE, 0.5, "column")


def test_ties_prune_the_lower_flat_index_first():
    score = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                          [2.0, 1.0, 2.0, 1.0]])
    assert positions(prune_mask(score, 0.5, "row")) == [(0, 0), (0, 1), (1, 1), (1, 3)]
    # Whole matrix, 3 of 8: the four 1.0 of row 0 come first in flat order.
    assert positions(prune_mask(score, 0.375, "matrix")) == [(0, 0), (0, 1), (0, 2)]


def test_nan_scores_are_pruned_first_in_index_order():
    score = torch.tensor([[0.5, NAN, 0.1, NAN],
                          [-math.inf, 3.0, NAN, 0.0]])
    assert positions(prune_mask(score, 0.25, "row")) == [(0, 1), (1, 2)]
    assert positions(prune_mask(score, 0.5, "row")) == [(0, 1), (0, 3), (1, 0), (1, 2)]
    assert positions(prune_mask(score, 0.75, "row")) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
    # Whole matrix, 4 of 8: the three NaN, then -inf.
    assert positions(prune_mask(score, 0.5, "matrix")) == [(0, 1), (0, 3), (1, 0), (1, 2)]


def test_wanda_per_row_by_hand():
    weight = torch.tensor([[1.0, -4.0, 1.0, 3.0],
                           [-0.5, 2.0, 3.0, -1.0],
                           [2.0, 1.0, -0.25, 8.0]])
    # Calibration inputs: 2 tokens × 4 input features; ‖X_j‖₂ per column = (5, 1, 2, 1).
    x = torch.tensor([[3.0, 1.0, 2.0, 0.0],
                      [4.0, 0.0, 0.0, 1.0]])
    norms = torch.linalg.vector_norm(x, dim=0)
    assert norms.tolist() == [5.0, 1.0, 2.0, 1.0]
    act_mag = weight.abs() * norms[None, :]
    assert act_mag.tolist() == [[5.0, 4.0, 2.0, 3.0],
                                [2.5, 2.0, 6.0, 1.0],
                                [10.0, 1.0, 0.5, 8.0]]
    assert SAVED_METRIC["wanda"] == "act_mag"
    wanda = prune_mask(scores_for("wanda", weight, act_mag), 0.5, "row")
    expected = torch.tensor([[False, False, True, True],
                             [False, True, False, True],
                             [False, True, True, False]])
    assert torch.equal(wanda, expected)
    # Magnitude alone prunes differently (row 0: |W| = 1, 4, 1, 3 → columns 0 and 2).
    magnitude = prune_mask(scores_for("magnitude", weight), 0.5, "row")
    assert positions(magnitude) == [(0, 0), (0, 2), (1, 0), (1, 3), (2, 1), (2, 2)]


def test_saved_score_methods_use_the_saved_tensor():
    weight = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    saved = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    for method in ("grad_x_weight", "grad_squared", "obd", "wanda"):
        assert scores_for(method, weight, saved) is saved
    assert positions(prune_mask(scores_for("obd", weight, saved), 0.5, "row")) == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="saved obd"):
        scores_for("obd", weight)
    with pytest.raises(ValueError, match="shape"):
        scores_for("obd", weight, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unknown pruning method"):
        scores_for("act_mag", weight, saved)


def test_random_masks_have_exact_counts_and_follow_the_seed():
    weight = torch.zeros(4, 10)

    def mask(seed, group):
        return prune_mask(scores_for("random", weight, generator=torch.Generator().manual_seed(seed)), 0.3, group)

    for seed in (0, 1):
        assert mask(seed, "row").sum(dim=1).tolist() == [3, 3, 3, 3]
        assert int(mask(seed, "matrix").sum()) == 12
    assert torch.equal(mask(0, "row"), mask(0, "row"))
    assert not torch.equal(mask(0, "row"), mask(1, "row"))
    assert not torch.equal(mask(0, "matrix"), mask(1, "matrix"))
    assert random_scores((2, 3), torch.Generator().manual_seed(0)).shape == (2, 3)
    with pytest.raises(ValueError, match="generator"):
        scores_for("random", weight)


def test_protect_prunes_the_next_lowest_instead():
    score = torch.tensor([[0.1, 0.2, 0.3, 0.4],
                          [0.4, 0.3, 0.2, 0.1]])
    assert positions(prune_mask(score, 0.5, "row")) == [(0, 0), (0, 1), (1, 2), (1, 3)]
    kept = protect(score, 0.5, "row", [(0, 0), (1, 3)])
    assert positions(kept) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert kept.sum(dim=1).tolist() == [2, 2]
    # Whole matrix, 3 of 8: 0.1, 0.1, 0.2, 0.2 by index → (0,0), (1,3), (0,1); protecting (0,0) takes (1,2) next.
    kept = protect(score, 0.375, "matrix", [(0, 0)])
    assert positions(kept) == [(0, 1), (1, 2), (1, 3)]


def test_protect_refuses_a_group_with_too_few_unprotected():
    score = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(ValueError, match="unprotected"):
        protect(score, 0.75, "row", [(0, 0), (0, 1)])
    with pytest.raises(ValueError, match="outside"):
        protect(score, 0.75, "row", [(1, 0)])


def test_a_capped_short_group_prunes_every_unprotected_weight_and_only_those():
    # Row 0: 3 of 4 to prune but 2 protected → only the 2 unprotected go; row 1 keeps its exact count of 3.
    score = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    shield = torch.tensor([[True, True, False, False], [False, False, False, True]])
    mask = prune_mask(score, 0.75, "row", shield, short="cap")
    assert mask.tolist() == [[False, False, True, True], [True, True, True, False]]
    with pytest.raises(ValueError, match="2 unprotected weights, fewer than the 3"):
        prune_mask(score, 0.75, "row", shield)


def sorted_mask(score, sparsity, group):
    """The mask by the full stable sort (the path for NaN or protected weights), for comparison."""
    grouped = score if group == "row" else score.reshape(1, -1)
    k = pruned_count(sparsity, grouped.shape[1])
    mask = torch.zeros(grouped.shape, dtype=torch.bool)
    mask.scatter_(1, _prune_order(grouped, None)[:, :k], True)
    return mask.reshape(score.shape)


@pytest.mark.parametrize("group", ["row", "matrix"])
def test_selection_without_sort_matches_the_sorted_order(group):
    gen = torch.Generator().manual_seed(0)
    # Few distinct values: many ties, signed zeros and infinities, where only the index may decide.
    values = torch.tensor([-math.inf, -1.0, -0.0, 0.0, 0.5, 1.0, math.inf])
    for _ in range(50):
        score = values[torch.randint(0, len(values), (7, 9), generator=gen)]
        for sparsity in (0.1, 0.3, 0.5, 0.9):
            assert torch.equal(prune_mask(score, sparsity, group), sorted_mask(score, sparsity, group))
    dense = torch.randn(40, 30, generator=gen)
    assert torch.equal(prune_mask(dense, 0.5, group), sorted_mask(dense, 0.5, group))
