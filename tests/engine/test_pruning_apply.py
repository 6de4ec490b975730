"""Pruning in place: exactly the masked entries are zeroed, the model comes back bit-identical, sparsity is counted."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.models.targets import scored_parameters
from esa.engine.perturbation.checksum import RestoreError
from esa.engine.pruning.apply import achieved_sparsity, prune, pruned
from esa.engine.pruning.masks import prune_mask, scores_for


@pytest.fixture()
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


def magnitude_masks(targets, sparsity=0.5, group="row"):
    return {t.key: prune_mask(scores_for("magnitude", t.weight()), sparsity, group) for t in targets}


def snapshot(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def assert_identical(model, before):
    after = model.state_dict()
    assert set(after) == set(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name


def logits(model):
    return model(torch.arange(12).reshape(2, 6)).logits


def test_pruning_zeroes_exactly_the_masked_entries_and_restores(llama):
    targets = scored_parameters(llama)
    masks = magnitude_masks(targets)
    before = snapshot(llama)
    with torch.no_grad():
        clean = logits(llama)
    with torch.no_grad(), pruned(llama, masks) as pruning:
        assert pruning.n_pruned == sum(int(m.sum()) for m in masks.values())
        assert pruning.n_pruned == sum(t.numel // 2 for t in targets)
        for t in targets:
            weight, mask, original = t.weight(), masks[t.key], before[t.name]
            assert bool((weight[mask] == 0).all()), t.key
            assert torch.equal(weight[~mask], original[~mask]), t.key
        assert not torch.equal(logits(llama), clean)
    assert pruning.restored
    assert_identical(llama, before)
    with torch.no_grad():
        assert torch.equal(logits(llama), clean)


def test_restore_happens_when_the_body_raises(llama):
    masks = magnitude_masks(scored_parameters(llama))
    before = snapshot(llama)
    with pytest.raises(RuntimeError, match="body failed"):
        with pruned(llama, masks):
            down = "model.layers.0.mlp.down_proj.weight"
            assert not torch.equal(llama.get_parameter(down), before[down])
            raise RuntimeError("body failed")
    assert_identical(llama, before)


def test_a_change_outside_the_mask_fails_the_restore_check(llama):
    target = scored_parameters(llama)[0]
    mask = torch.zeros(target.shape, dtype=torch.bool)
    mask[0, 0] = True
    with pytest.raises(RestoreError):
        with torch.no_grad(), pruned(llama, {target.key: mask}):
            target.parameter[1, 1] += 1.0  # not a pruned element: the restore cannot undo it


def test_achieved_sparsity_counts_pruned_and_already_zero_weights(llama):
    targets = scored_parameters(llama)
    down = next(t for t in targets if t.name == "model.layers.1.mlp.down_proj.weight")
    masks = magnitude_masks(targets, sparsity=0.25, group="matrix")
    mask = masks[down.key]
    outside = (~mask).nonzero()[0].tolist()
    inside = mask.nonzero()[0].tolist()
    with torch.no_grad():
        # Zeros set after the masks were drawn: one the mask does not cover (adds one), one it does (counted
        # once); -0.0 is a zero too.
        down.parameter[outside[0], outside[1]] = -0.0
        down.parameter[inside[0], inside[1]] = 0.0
    before = achieved_sparsity(llama, targets)
    assert before.loc[before["name"] == down.key, "zeros"].item() == 2
    with pruned(llama, masks):
        table = achieved_sparsity(llama, targets)
    assert list(table.columns) == ["name", "n", "zeros", "fraction"]
    assert table["name"].tolist() == [t.key for t in targets]
    for t, row in zip(targets, table.itertuples()):
        expected = t.numel // 4 + (1 if t.key == down.key else 0)
        assert (row.n, row.zeros) == (t.numel, expected), t.key
        assert row.fraction == expected / t.numel
    assert achieved_sparsity(llama, targets)["zeros"].tolist() == before["zeros"].tolist()


def test_masks_are_checked_against_the_model(llama):
    target = scored_parameters(llama)[0]
    with pytest.raises(KeyError, match="lacks"):
        prune(llama, {"model.layers.9.mlp.up_proj.weight": torch.zeros(2, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="bool tensor of shape"):
        prune(llama, {target.key: torch.zeros(target.shape)})
    with pytest.raises(ValueError, match="not in this model"):
        other = LlamaForCausalLM(llama.config)
        achieved_sparsity(llama, scored_parameters(other))


class PackedExperts(torch.nn.Module):
    """One layer with a 3-D packed expert tensor, as transformers 5 stores MoE experts."""

    def __init__(self):
        super().__init__()
        experts = torch.nn.Module()
        experts.down_proj = torch.nn.Parameter(torch.arange(1.0, 25.0).reshape(2, 3, 4))
        mlp = torch.nn.Module()
        mlp.experts = experts
        layer = torch.nn.Module()
        layer.mlp = mlp
        self.layers = torch.nn.ModuleList([layer])


def test_expert_slices_of_a_packed_tensor_are_pruned_separately():
    model = PackedExperts()
    targets = scored_parameters(model)
    assert [t.key for t in targets] == ["layers.0.mlp.experts.down_proj[0]", "layers.0.mlp.experts.down_proj[1]"]
    original = model.layers[0].mlp.experts.down_proj.detach().clone()
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 2] = True
    with pruned(model, {targets[1].key: mask}):
        now = model.layers[0].mlp.experts.down_proj.detach()
        assert now[1, 1, 2].item() == 0.0
        changed = (now != original).nonzero().tolist()
        assert changed == [[1, 1, 2]]
        assert achieved_sparsity(model)["zeros"].tolist() == [0, 1]
    assert torch.equal(model.layers[0].mlp.experts.down_proj, original)


def test_restore_is_bit_exact_for_negative_zero_and_nan(llama):
    target = scored_parameters(llama)[0]
    mask = torch.zeros(target.shape, dtype=torch.bool)
    mask[0, :2] = True
    with torch.no_grad():
        target.parameter[0, 0] = -0.0
        target.parameter[0, 1] = float("nan")
    bits = target.parameter.detach().view(torch.int32).clone()
    with pruned(llama, {target.key: mask}):
        assert target.parameter[0, :2].tolist() == [0.0, 0.0]
        assert not bool(torch.signbit(target.parameter[0, 0]))
    # torch.equal on values cannot tell -0.0 from +0.0 or compare NaN, so compare the stored bits.
    assert torch.equal(target.parameter.detach().view(torch.int32), bits)
