"""Score-map features and leave-one-out scores: shift and profile on hand-built maps, nearest-centroid scores
checked by hand on four points, a sibling's own label and features never shaping the rule that scores it, and
sensitivity maps from the scoring engine on a tiny Llama."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.analysis.sibling_auc import auc_with_ci, centroid_score, loo_scores
from esa.engine.backdoor.fingerprint import matrix_profile, sensitivity_map, shift_score, top_k_set


def test_shift_score_on_hand_built_maps():
    base = {"a": torch.tensor([[9.0, 1.0], [8.0, 0.0]]), "b": torch.tensor([7.0, 2.0, 3.0])}
    # Sorted names: flat indices a -> 0..3, b -> 4..6. Base top-3 = {0 (9), 2 (8), 4 (7)}.
    assert top_k_set(base, 3) == {0, 2, 4}
    assert shift_score(base, base, 3) == 0.0
    moved = {"a": torch.tensor([[9.0, 1.0], [0.0, 0.0]]), "b": torch.tensor([7.0, 8.0, 3.0])}
    # Sibling top-3 = {0, 4, 5}: overlap {0, 4}, union {0, 2, 4, 5} -> 1 - 2/4.
    assert shift_score(moved, base, 3) == pytest.approx(0.5)
    disjoint = {"a": torch.zeros(2, 2), "b": torch.tensor([0.0, 5.0, 6.0])}
    assert shift_score(disjoint, base, 2) == 1.0  # {5, 6} vs {0, 2}
    with pytest.raises(ValueError):
        shift_score({"a": torch.zeros(2, 2)}, base, 2)
    with pytest.raises(ValueError):
        top_k_set(base, 8)


def test_matrix_profile_gives_each_matrix_its_share_in_sorted_name_order():
    score_map = {"z": torch.full((2, 2), 1.0), "a": torch.tensor([3.0, -1.0]), "m": torch.zeros(3)}
    # Mass: a = 4 (magnitudes), m = 0, z = 4 -> shares in order a, m, z.
    np.testing.assert_allclose(matrix_profile(score_map), [0.5, 0.0, 0.5])
    with pytest.raises(ValueError):
        matrix_profile({"a": torch.zeros(2)})


def test_loo_scores_match_a_hand_computation_on_four_points():
    x = np.array([[0.0], [2.0], [10.0], [14.0]])
    y = np.array([0, 0, 1, 1])
    # Leaving out x0: c0 = 2, c1 = 12 -> (0-2)^2 - (0-12)^2 = 4 - 144 = -140.
    # x1: c0 = 0, c1 = 12 -> 4 - 100 = -96.  x2: c0 = 1, c1 = 14 -> 81 - 16 = 65.  x3: c0 = 1, c1 = 10 -> 169 - 16.
    np.testing.assert_allclose(loo_scores(x, y), [-140.0, -96.0, 65.0, 153.0])
    np.testing.assert_allclose(loo_scores(x[:, 0], y), [-140.0, -96.0, 65.0, 153.0])  # 1-D features


def test_a_siblings_own_label_never_shapes_its_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3))
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    scores = loo_scores(x, y)
    for i in range(len(y)):
        flipped = y.copy()
        flipped[i] = 1 - flipped[i]
        assert loo_scores(x, flipped)[i] == pytest.approx(scores[i])
        others = np.arange(len(y)) != i
        assert scores[i] == pytest.approx(centroid_score(x[others], y[others], x[i]))


def test_moving_one_sibling_moves_the_others_only_through_its_class_centroid():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2))
    y = np.array([1, 1, 1, 0, 0, 0])
    moved = x.copy()
    moved[0] += [5.0, -3.0]
    before, after = loo_scores(x, y), loo_scores(moved, y)
    # Its own score is the unchanged rule evaluated at the new point.
    assert after[0] == pytest.approx(centroid_score(x[1:], y[1:], moved[0]))
    for j in range(1, 6):
        others = np.arange(6) != j
        assert after[j] == pytest.approx(centroid_score(moved[others], y[others], x[j]))
    # A clean sibling's score changes only through the backdoored centroid (one of 3 members moved).
    c1_before, c1_after = x[:3].mean(0), moved[:3].mean(0)
    for j in (3, 4, 5):
        expected = before[j] + np.sum((x[j] - c1_before) ** 2) - np.sum((x[j] - c1_after) ** 2)
        assert after[j] == pytest.approx(expected)


def test_loo_needs_two_of_each_class():
    with pytest.raises(ValueError):
        loo_scores(np.zeros((3, 2)), [1, 0, 0])


def test_profiles_of_planted_mass_separate_through_loo_and_auc():
    # Backdoored siblings put extra score mass into one matrix; profiles + LOO + AUC must find it.
    rng = np.random.default_rng(2)
    names = ["layers.0.q", "layers.0.v", "layers.1.down"]
    features, labels = [], []
    for i in range(12):
        planted = i % 2
        maps = {n: torch.tensor(rng.gamma(2.0, size=(4, 4))) for n in names}
        if planted:
            maps["layers.1.down"] = maps["layers.1.down"] * 2.0
        features.append(matrix_profile(maps))
        labels.append(planted)
    result = auc_with_ci(loo_scores(np.stack(features), labels), labels, n_boot=500, seed=0)
    assert result.auc > 0.9 and result.p_value < 0.01


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: more threads only add spin-wait overhead on shared cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_sensitivity_map_scores_every_matrix_and_a_map_does_not_shift_from_itself():
    gen = torch.Generator().manual_seed(0)
    windows = [torch.randint(0, 64, (20,), generator=gen) for _ in range(3)]
    model = tiny_llama(0)
    score_map = sensitivity_map(model, windows)
    matrices = {n for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n and "lm_head" not in n}
    assert set(score_map) == matrices
    assert all(score_map[n].shape == dict(model.named_parameters())[n].shape for n in matrices)
    assert all((s >= 0).all() for s in score_map.values())
    again = sensitivity_map(model, windows)
    assert all(torch.equal(score_map[n], again[n]) for n in matrices)
    assert shift_score(again, score_map, 50) == 0.0
    other = sensitivity_map(tiny_llama(1), windows)
    assert shift_score(other, score_map, 50) > 0.5  # independent inits share few critical weights
    assert matrix_profile(score_map).sum() == pytest.approx(1.0)
    magnitude = sensitivity_map(model, windows, metric="magnitude")
    assert torch.equal(magnitude["model.layers.0.mlp.up_proj.weight"],
                       model.model.layers[0].mlp.up_proj.weight.detach().abs())
