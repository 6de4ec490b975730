"""Critical-weight selections: exact matched counts, the right entries on hand-built scores, seeded random draws."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from arch_zoo import tiny
from esa.engine.adaptation.selection import count_selected, critical_masks, select, selected_fraction
from esa.engine.models.targets import scored_parameters
from esa.engine.pruning.model_masks import model_masks

NAN = float("nan")


@pytest.fixture()
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def score_dict(model, seed=1, integer=False):
    """One parameter-shaped score per scored parameter; ``integer`` draws from {0..3} to force many ties."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in scored_parameters(model):
        shape = t.parameter.shape
        out[t.name] = torch.randint(0, 4, shape, generator=gen).float() if integer else torch.rand(shape,
                                                                                                    generator=gen)
    return out


def chosen(mask):
    return sorted(torch.nonzero(mask.reshape(-1)).reshape(-1).tolist())


def test_row_selection_on_hand_built_scores():
    score = torch.tensor([[5., 1., 4., 2., 6., 3., 7., 0.],
                          [0., 0., 0., 0., 0., 0., 0., 0.]])
    top = select(score, "top", 0.25, "row")
    bottom = select(score, "bottom", 0.25, "row")
    assert chosen(top[0]) == [4, 6] and chosen(bottom[0]) == [1, 7]
    # All tied: bottom takes the lowest indices, top the highest (one order read from both ends), so no overlap.
    assert chosen(bottom[1]) == [0, 1] and chosen(top[1]) == [6, 7]


def test_matrix_selection_on_hand_built_scores():
    score = torch.tensor([[5., 1., 4.], [2., 6., 3.], [9., 0., 7.], [8., 11., 10.]])
    assert chosen(select(score, "top", 0.25, "matrix")) == [6, 10, 11]  # 9, 11, 10
    assert chosen(select(score, "bottom", 0.25, "matrix")) == [1, 3, 7]  # 1, 2, 0


def test_nan_ranks_below_every_number():
    score = torch.tensor([[NAN, 3., 1., 2.],
                          [NAN, NAN, NAN, 1.]])
    top, bottom = select(score, "top", 0.5, "row"), select(score, "bottom", 0.5, "row")
    assert chosen(bottom[0]) == [0, 2] and chosen(top[0]) == [1, 3]
    # Only one number for two top places: a NaN fills the second, and top still avoids bottom's entries.
    assert chosen(bottom[1]) == [0, 1] and chosen(top[1]) == [2, 3]


def test_zero_fraction_selects_nothing():
    score = torch.rand(3, 5)
    for which in ("top", "bottom"):
        assert not select(score, which, 0.0, "row").any()
    assert not select(score, "random", 0.0, "matrix", torch.Generator().manual_seed(0)).any()


@pytest.mark.parametrize("group", ["row", "matrix"])
@pytest.mark.parametrize("which", ["top", "bottom", "random"])
def test_every_matrix_gets_exactly_floor_f_n(llama, which, group):
    fraction = 0.3
    masks = critical_masks(llama, which, fraction, group, score_dict(llama), seed=3)
    targets = scored_parameters(llama)
    assert list(masks) == [t.key for t in targets]
    total = 0
    for t in targets:
        mask = masks[t.key]
        rows, cols = t.shape
        assert mask.dtype == torch.bool and tuple(mask.shape) == t.shape
        if group == "row":
            assert mask.sum(dim=1).tolist() == [math.floor(fraction * cols)] * rows
            total += rows * math.floor(fraction * cols)
        else:
            assert int(mask.sum()) == math.floor(fraction * rows * cols)
            total += math.floor(fraction * rows * cols)
    assert count_selected(masks) == total
    assert selected_fraction(masks) == total / sum(t.numel for t in targets)


def test_top_and_bottom_are_the_largest_and_smallest_scores(llama):
    scores = score_dict(llama)  # distinct values: the answer is topk's
    top = critical_masks(llama, "top", 0.25, "row", scores)
    bottom = critical_masks(llama, "bottom", 0.25, "row", scores)
    for t in scored_parameters(llama):
        score = scores[t.name]
        k = math.floor(0.25 * t.shape[1])
        largest = torch.zeros_like(top[t.key]).scatter_(1, score.topk(k, dim=1).indices, True)
        smallest = torch.zeros_like(top[t.key]).scatter_(1, (-score).topk(k, dim=1).indices, True)
        assert torch.equal(top[t.key], largest) and torch.equal(bottom[t.key], smallest)


@pytest.mark.parametrize("group", ["row", "matrix"])
def test_top_and_bottom_are_disjoint_up_to_half_even_with_ties(llama, group):
    scores = score_dict(llama, integer=True)
    for fraction in (0.1, 0.3, 0.5):
        top = critical_masks(llama, "top", fraction, group, scores)
        bottom = critical_masks(llama, "bottom", fraction, group, scores)
        for key in top:
            assert not (top[key] & bottom[key]).any()
    # At 0.5 of an even group they partition it.
    top = critical_masks(llama, "top", 0.5, "matrix", scores)
    bottom = critical_masks(llama, "bottom", 0.5, "matrix", scores)
    assert all(bool((top[k] | bottom[k]).all()) for k in top)


def test_random_is_reproducible_differs_by_seed_and_needs_no_scores(llama):
    a = critical_masks(llama, "random", 0.3, "row", seed=1)
    b = critical_masks(llama, "random", 0.3, "row", seed=1)
    c = critical_masks(llama, "random", 0.3, "row", seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    # The same draws as the pruning stage's random baseline at that seed.
    pruned = model_masks(llama, "random", 0.3, "row", seed=1)
    assert all(torch.equal(a[k], pruned[k]) for k in a)


def test_packed_experts_are_selected_per_expert():
    model = tiny("mixtral")
    targets = [t for t in scored_parameters(model) if t.packed]
    assert targets, "the tiny Mixtral should pack its experts"
    scores = {t.name: torch.rand(t.parameter.shape, generator=torch.Generator().manual_seed(5))
              for t in scored_parameters(model)}
    masks = critical_masks(model, "top", 0.25, "matrix", scores)
    for t in targets:
        assert t.key.endswith(f"[{t.expert}]")
        assert torch.equal(masks[t.key], select(scores[t.name][t.expert], "top", 0.25, "matrix"))


def test_rank_selections_need_scores(llama):
    with pytest.raises(ValueError, match="scores"):
        critical_masks(llama, "top", 0.1, "row")
    scores = score_dict(llama)
    scores.pop(scored_parameters(llama)[0].name)
    with pytest.raises(KeyError):
        critical_masks(llama, "bottom", 0.1, "row", scores)
    with pytest.raises(ValueError, match="which"):
        critical_masks(llama, "middle", 0.1, "row", scores)
