"""AUC with its interval and null: hand-computed AUCs (ties count one half), a bootstrap that keeps both class
counts in every resample, an interval around the point, and permutation p-values that are exact for small sets."""

from __future__ import annotations

import numpy as np
import pytest

import esa.analysis.sibling_auc as fp
from esa.analysis.sibling_auc import auc, auc_with_ci


def test_perfect_separation_gives_one_and_reversed_gives_zero():
    assert auc_with_ci([5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0], n_boot=50).auc == 1.0
    assert auc_with_ci([1, 2, 3, 5, 6, 7], [1, 1, 1, 0, 0, 0], n_boot=50).auc == 0.0


def test_ties_count_one_half():
    # pos (1, 2) against neg (1, 0): pairs (1,1) tie = 0.5, (1,0) = 1, (2,1) = 1, (2,0) = 1 -> 3.5 / 4.
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == pytest.approx(0.875)
    assert auc(np.array([3.0, 3.0]), np.array([3.0, 3.0, 3.0])) == pytest.approx(0.5)
    # pos (1, 4, 5, 8) vs neg (2, 3, 6, 7): 0 + 2 + 2 + 4 = 8 of 16 pairs.
    assert auc(np.array([1.0, 4, 5, 8]), np.array([2.0, 3, 6, 7])) == pytest.approx(0.5)


def test_auc_is_vectorised_over_resamples():
    pos = np.array([[1.0, 2.0], [3.0, 3.0]])
    neg = np.array([[1.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(auc(pos, neg, axis=-1), [0.875, 0.5])


def test_the_stratified_bootstrap_keeps_both_class_counts(monkeypatch):
    sizes = set()
    real = fp.mannwhitneyu

    def spy(x, y, **kw):
        sizes.add((np.shape(x)[kw["axis"]], np.shape(y)[kw["axis"]]))
        return real(x, y, **kw)

    monkeypatch.setattr(fp, "mannwhitneyu", spy)
    rng = np.random.default_rng(0)
    labels = [1] * 3 + [0] * 5
    result = fp.auc_with_ci(rng.normal(size=8), labels, n_boot=300, seed=1, n_perm=100)
    assert sizes == {(3, 5)}  # the point, every bootstrap resample and every permutation: 3 backdoored, 5 clean
    assert (result.n_pos, result.n_neg) == (3, 5)


def test_perfect_separation_has_a_degenerate_interval_at_one():
    # Resampling within each class can never mix the classes, so every resample separates perfectly.
    result = auc_with_ci([5, 6, 7, 8, 1, 2, 3, 4], [1, 1, 1, 1, 0, 0, 0, 0], n_boot=500, seed=0)
    assert (result.ci_low, result.auc, result.ci_high) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_interval_contains_the_point(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([1] * 8 + [0] * 8)
    scores = rng.normal(size=16) + labels * 0.3
    result = auc_with_ci(scores, labels, n_boot=1000, seed=seed)
    assert result.ci_low <= result.auc <= result.ci_high
    assert 0.0 <= result.ci_low < result.ci_high <= 1.0
    assert auc_with_ci(scores, labels, n_boot=1000, seed=seed) == result  # seeded


def test_permutation_p_value_is_exact_and_small_for_perfect_separation():
    # 5 + 5 siblings: C(10, 5) = 252 relabellings, only the observed one reaches AUC 1.
    result = auc_with_ci(list(range(10, 15)) + list(range(5)), [1] * 5 + [0] * 5, n_boot=100)
    assert result.p_value == pytest.approx(1 / 252)
    assert result.null_mean == pytest.approx(0.5)


def test_permutation_p_value_is_large_without_structure():
    # Interleaved scores: AUC exactly 0.5; half the null lies at or above it.
    result = auc_with_ci([1, 4, 5, 8, 2, 3, 6, 7], [1, 1, 1, 1, 0, 0, 0, 0], n_boot=200)
    assert result.auc == 0.5
    assert result.p_value > 0.4
    rng = np.random.default_rng(5)
    noise = auc_with_ci(rng.normal(size=40), [1] * 20 + [0] * 20, n_boot=200, n_perm=2000, seed=5)
    assert noise.p_value > 0.05 and abs(noise.null_mean - 0.5) < 0.02


def test_labels_must_be_binary_and_both_classes_present():
    with pytest.raises(ValueError):
        auc_with_ci([1, 2, 3], [1, 2, 0])
    with pytest.raises(ValueError):
        auc_with_ci([1, 2, 3], [1, 1, 1])
    with pytest.raises(ValueError, match="two siblings of each class"):
        auc_with_ci([1, 2, 3], [1, 0, 0])
