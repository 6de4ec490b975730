"""Which calibration windows the Hutchinson probes use: a seeded uniform subset, recorded in the scoring meta."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.scoring.hutchinson import window_subset
from esa.engine.scoring.passes import score_model


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_subset_has_the_size_asked_for_and_is_sorted_distinct_indices():
    for seed in range(20):
        picked = window_subset(400, 32, seed)
        assert len(picked) == 32 == len(set(picked))
        assert picked == sorted(picked) and all(0 <= i < 400 for i in picked)


def test_subset_is_deterministic_for_a_seed_and_changes_with_it():
    assert window_subset(400, 32, 1337) == window_subset(400, 32, 1337)
    draws = {tuple(window_subset(400, 32, seed)) for seed in range(10)}
    assert len(draws) == 10
    assert tuple(range(32)) not in draws  # not the corpus-order prefix


def test_every_window_is_equally_likely():
    counts = Counter(i for seed in range(3000) for i in window_subset(10, 3, seed))
    # Each index is expected 900 times (3000 x 3/10); the binomial sd is about 25.
    assert set(counts) == set(range(10))
    assert all(800 < c < 1000 for c in counts.values()), counts


def test_all_windows_when_no_size_or_a_size_beyond_them():
    assert window_subset(5, None, 0) == [0, 1, 2, 3, 4]
    assert window_subset(5, 5, 0) == window_subset(5, 9, 3) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        window_subset(5, 0, 0)


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).to(torch.float64).eval()


def test_score_model_probes_exactly_the_drawn_windows_and_says_so():
    model = tiny_llama()
    params = [(n, p) for n, p in model.named_parameters() if n.endswith("down_proj.weight")]
    gen = torch.Generator().manual_seed(3)
    wins = [torch.randint(0, 64, (n,), generator=gen) for n in (9, 11, 13, 15, 17, 19)]
    kw = dict(probes=1, seed=4, accum_dtype=torch.float64, score_dtype=torch.float64, progress=False)
    sub = score_model(model, params, wins, ["hutchinson_diag"], hutchinson_windows=3, **kw)
    picked = window_subset(6, 3, 4)
    assert sub.meta.hutchinson["window_indices"] == picked
    assert sub.meta.hutchinson["windows"] == 3
    assert sub.meta.hutchinson["window_subset"] == "3 of 6 calibration windows drawn uniformly with the run's seed"
    # Same seed, same probes: scoring only the drawn windows gives the same estimate.
    only = score_model(model, params, [wins[i] for i in picked], ["hutchinson_diag"], **kw)
    assert only.meta.hutchinson["window_subset"] == "all 3 calibration windows"
    name = params[0][0]
    torch.testing.assert_close(sub.score("hutchinson_diag", name), only.score("hutchinson_diag", name))
    assert picked != [0, 1, 2]  # else this test could not tell a draw from the first windows
