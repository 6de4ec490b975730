"""Spearman's rho between per-head critical counts and attention statistics, with clustered (by layer) and naive
(by head) bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from esa.analysis.head_correlation import head_correlation


def frames(layer, head, count, stat):
    counts = pd.DataFrame({"layer": layer, "head": head, "total": count, "q": np.zeros(len(layer), int)})
    stats = pd.DataFrame({"layer": layer, "head": head, "entropy": stat, "sink_share": stat})
    return counts, stats


def test_rho_on_a_hand_computed_case():
    # Ranks (1, 2, 3, 4) against (1, 3, 2, 4): Σd² = 2, rho = 1 − 6·2 / (4·15) = 0.8.
    counts, stats = frames([0, 0, 1, 1], [0, 1, 0, 1], [10, 20, 30, 40], [0.1, 0.3, 0.2, 0.4])
    got = head_correlation(counts, stats, resample="head", n_resamples=200)
    assert got.rho == pytest.approx(0.8)
    assert (got.n_heads, got.n_layers, got.count, got.stat) == (4, 2, "total", "entropy")
    # Some resamples of four heads draw one count four times: no rho there, so no interval.
    assert got.n_undefined > 0 and math.isnan(got.ci_low) and math.isnan(got.ci_high)


def test_a_perfectly_monotone_relation_has_an_interval_at_one():
    n_layers, n_heads = 6, 4
    layer = np.repeat(np.arange(n_layers), n_heads)
    head = np.tile(np.arange(n_heads), n_layers)
    count = np.arange(n_layers * n_heads)
    counts, stats = frames(layer, head, count, np.exp(-count / 7.0))
    got = head_correlation(counts, stats, stat="sink_share", n_resamples=300)
    assert got.rho == pytest.approx(-1.0) and got.resample == "layer"
    assert got.ci_low == pytest.approx(-1.0) and got.ci_high == pytest.approx(-1.0) and got.n_undefined == 0


def test_clustering_by_layer_widens_the_interval_when_heads_share_their_layer():
    # A layer effect drives both counts and statistic; within a layer they are unrelated noise. Eight heads per
    # layer look like eight independent points to the naive bootstrap, but there are only five layers of evidence.
    rng = np.random.default_rng(0)
    n_layers, n_heads = 5, 8
    layer = np.repeat(np.arange(n_layers), n_heads)
    head = np.tile(np.arange(n_heads), n_layers)
    effect = rng.normal(size=n_layers)[layer]
    counts, stats = frames(layer, head, 10 * effect + rng.normal(size=layer.size),
                           effect + 0.1 * rng.normal(size=layer.size))
    clustered = head_correlation(counts, stats, resample="layer", n_resamples=1000, seed=1)
    naive = head_correlation(counts, stats, resample="head", n_resamples=1000, seed=1)
    assert clustered.rho == naive.rho
    assert clustered.ci_low <= clustered.rho <= clustered.ci_high
    assert (clustered.ci_high - clustered.ci_low) > 1.5 * (naive.ci_high - naive.ci_low)


def test_one_layer_cannot_be_resampled_as_clusters_and_constant_counts_have_no_rho():
    counts, stats = frames([0, 0, 0, 0], [0, 1, 2, 3], [1, 2, 3, 5], [0.5, 0.4, 0.3, 0.1])
    one = head_correlation(counts, stats, n_resamples=100)
    assert one.rho == pytest.approx(-1.0) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    flat = head_correlation(counts, stats, count="q", resample="head", n_resamples=100)
    assert math.isnan(flat.rho) and math.isnan(flat.ci_low)
    with pytest.raises(ValueError, match="resample"):
        head_correlation(counts, stats, resample="token")  # type: ignore[arg-type]
