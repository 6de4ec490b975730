"""Adaptation training: masked arms change exactly what they may, the source model is never touched, the Fisher
penalty matches its formula, and each arm counts its trainable entries."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from arch_zoo import tiny
from esa.engine.adaptation.data import text_loss
from esa.engine.adaptation.lora import lora_model, lora_parameter_count, lora_targets, merged
from esa.engine.adaptation.penalty import FisherPenalty, Penalty
from esa.engine.adaptation.selection import count_selected, critical_masks
from esa.engine.adaptation.training import adapt
from esa.engine.models.targets import scored_parameters
from esa.engine.perturbation.checksum import checksum

STEPS = 4


@pytest.fixture()
def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


@pytest.fixture()
def chunks():
    return torch.randint(0, 64, (12, 10), generator=torch.Generator().manual_seed(7))


def run(model, chunks, steps=STEPS, **kw):
    return adapt(model, text_loss(chunks), n_items=len(chunks), steps=steps, batch_size=4, learning_rate=1e-2,
                 seed=0, desc="test", **kw)


def bits(t):
    return t.detach().contiguous().view(torch.int32)


def fisher_scores(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return {t.name: torch.rand(t.parameter.shape, generator=gen) + 0.01 for t in scored_parameters(model)}


def params(model):
    return dict(model.named_parameters())


def test_trainable_masks_change_only_the_selected_entries(llama, chunks):
    before = checksum(llama)
    masks = critical_masks(llama, "random", 0.2, "row", seed=1)
    result = run(llama, chunks, trainable=masks)
    assert checksum(llama).digests == before.digests  # the source is untouched
    old, new = params(llama), params(result.model)
    targets = {t.name: t for t in scored_parameters(llama)}
    for name, p in old.items():
        if name in targets:
            mask = masks[name]
            assert torch.equal(bits(new[name])[~mask], bits(p)[~mask]), name
            assert bool((bits(new[name])[mask] != bits(p)[mask]).all()), name
        else:  # embeddings, norms, head: no trainable entry
            assert torch.equal(bits(new[name]), bits(p)), name
    assert result.n_trainable == count_selected(masks)
    assert all(p.requires_grad for p in result.model.parameters())


def test_frozen_masks_hold_the_selected_entries_and_train_the_rest(llama, chunks):
    before = checksum(llama)
    masks = critical_masks(llama, "top", 0.3, "matrix", fisher_scores(llama))
    result = run(llama, chunks, frozen=masks)
    assert checksum(llama).digests == before.digests
    old, new = params(llama), params(result.model)
    for name, p in old.items():
        if name in masks:
            mask = masks[name]
            assert torch.equal(bits(new[name])[mask], bits(p)[mask]), name
            assert bool((bits(new[name])[~mask] != bits(p)[~mask]).all()), name
        else:
            assert not torch.equal(bits(new[name]), bits(p)), name
    total = sum(p.numel() for p in llama.parameters())
    assert result.n_trainable == total - count_selected(masks)


def test_full_fine_tuning_changes_every_weight_matrix(llama, chunks):
    before = checksum(llama)
    result = run(llama, chunks)
    assert checksum(llama).digests == before.digests
    old, new = params(llama), params(result.model)
    for t in scored_parameters(llama):
        assert bool((bits(new[t.name]) != bits(old[t.name])).all()), t.name
    assert result.n_trainable == sum(p.numel() for p in llama.parameters())
    assert [point["step"] for point in result.loss_curve] == list(range(1, STEPS + 1))


def test_packed_expert_slices_are_masked_one_by_one(chunks):
    model = tiny("mixtral")
    masks = critical_masks(model, "random", 0.25, "matrix", seed=5)
    result = run(model, chunks, steps=2, trainable=masks)
    old, new = params(model), params(result.model)
    packed = [t for t in scored_parameters(model) if t.packed]
    assert packed
    for t in packed:
        mask = masks[t.key]
        assert torch.equal(bits(t.view(new[t.name]))[~mask], bits(t.view(old[t.name]))[~mask]), t.key
        assert bool((bits(t.view(new[t.name]))[mask] != bits(t.view(old[t.name]))[mask]).any()), t.key
    assert result.n_trainable == count_selected(masks)


def test_parameters_without_a_trainable_entry_get_no_gradient(llama, chunks):
    masks = critical_masks(llama, "random", 0.1, "row", seed=2)
    seen = []
    loss = text_loss(chunks)

    def loss_of(model, idx):
        seen.append({n for n, p in model.named_parameters() if p.requires_grad})
        return loss(model, idx)

    adapt(llama, loss_of, n_items=len(chunks), steps=2, batch_size=4, learning_rate=1e-2, seed=0,
          trainable=masks)
    assert seen[0] == set(masks)


def test_same_seed_same_result_and_the_callers_generator_is_left_alone(llama, chunks):
    state = torch.get_rng_state()
    a = run(llama, chunks, steps=2)
    assert torch.equal(torch.get_rng_state(), state)
    b = run(llama, chunks, steps=2)
    assert all(torch.equal(bits(x), bits(y)) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert a.loss_curve == b.loss_curve


def test_fisher_penalty_value_by_hand():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False))
    name = "0.weight"
    assert [t.key for t in scored_parameters(model)] == [name]
    mask = torch.tensor([[True, False, True], [False, True, False]])
    fisher = {name: torch.tensor([[1., 2., 3.], [4., 5., 6.]])}
    penalty = FisherPenalty(model, Penalty({name: mask}, fisher, strength=2.0))
    assert penalty.normaliser == 3.0  # mean of 1, 3, 5
    assert penalty().item() == 0.0  # at the anchor
    with torch.no_grad():
        model[0].weight += torch.tensor([[1., 7., 2.], [7., -1., 7.]])  # the 7s are outside the mask
    # λ/2 · (1/3 · 1² + 3/3 · 2² + 5/3 · 1²) = 1 · 6
    assert penalty().item() == pytest.approx(6.0, rel=1e-6)


def test_fisher_penalty_gradient_matches_the_formula(llama):
    fisher = fisher_scores(llama)
    masks = critical_masks(llama, "top", 0.3, "row", fisher)
    strength = 2.5
    penalty = FisherPenalty(llama, Penalty(masks, fisher, strength))
    selected = torch.cat([fisher[k][masks[k]] for k in masks])
    assert penalty.normaliser == pytest.approx(float(selected.double().mean()), rel=1e-6)
    anchor = {n: p.detach().clone() for n, p in llama.named_parameters()}
    with torch.no_grad():
        gen = torch.Generator().manual_seed(4)
        for p in llama.parameters():
            p += 0.1 * torch.randn(p.shape, generator=gen)
    llama.zero_grad(set_to_none=True)
    value = penalty()
    value.backward()
    hand = 0.0
    for name, p in llama.named_parameters():
        if name not in masks:
            assert p.grad is None or not p.grad.any(), name
            continue
        mask = masks[name]
        f_norm = fisher[name] / penalty.normaliser
        moved = p.detach() - anchor[name]
        expected = torch.where(mask, strength * f_norm * moved, torch.zeros_like(moved))
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7)
        assert not p.grad[~mask].any(), name
        hand += 0.5 * strength * float((f_norm * moved.square())[mask].double().sum())
    assert value.item() == pytest.approx(hand, rel=1e-5)


def test_a_strong_penalty_holds_the_critical_entries(llama, chunks):
    fisher = fisher_scores(llama)
    masks = critical_masks(llama, "top", 0.3, "row", fisher)

    def drift(strength):
        result = run(llama, chunks, steps=8, penalty=Penalty(masks, fisher, strength))
        new = params(result.model)
        return sum(float((new[k] - params(llama)[k]).abs()[masks[k]].sum()) for k in masks), result

    free, free_run = drift(0.0)
    held, held_run = drift(1e6)
    assert held < 0.25 * free
    assert "penalty" in held_run.loss_curve[-1] and held_run.loss_curve[-1]["penalty"] > 0
    assert free_run.loss_curve[-1]["penalty"] == 0.0
    assert held_run.n_trainable == sum(p.numel() for p in llama.parameters())  # a penalty freezes nothing


def test_lora_arm_trains_only_the_adapters(llama, chunks):
    pytest.importorskip("peft", reason="peft is not installed (pip install peft); the LoRA arm is optional")
    before = checksum(llama)
    rank = 2
    wrapped = lora_model(llama, rank=rank, alpha=4.0)
    assert checksum(llama).digests == before.digests
    modules = dict(llama.named_modules())
    expected = sum(rank * (modules[m].in_features + modules[m].out_features) for m in lora_targets(llama))
    assert len(lora_targets(llama)) == len(scored_parameters(llama))
    assert lora_parameter_count(wrapped) == expected
    result = run(wrapped, chunks)
    assert result.n_trainable == expected
    base = {n: p for n, p in result.model.named_parameters() if "lora_" not in n}
    start = {n: p for n, p in wrapped.named_parameters() if "lora_" not in n}
    assert all(torch.equal(bits(base[n]), bits(start[n])) for n in start)  # only adapters moved
    plain = merged(result.model)
    assert type(plain) is LlamaForCausalLM
    old, new = params(llama), params(plain)
    assert set(old) == set(new)
    targeted = {f"{m}.weight" for m in lora_targets(llama)}
    for name in old:
        assert torch.equal(bits(new[name]), bits(old[name])) == (name not in targeted), name
    assert checksum(llama).digests == before.digests


def test_bad_arguments_are_refused(llama, chunks):
    masks = critical_masks(llama, "random", 0.2, "row", seed=1)
    with pytest.raises(ValueError, match="not both"):
        run(llama, chunks, trainable=masks, frozen=masks)
    with pytest.raises(KeyError):
        run(llama, chunks, trainable={"no.such.weight": next(iter(masks.values()))})
    with pytest.raises(ValueError, match="nothing to train"):
        run(llama, chunks, trainable={k: torch.zeros_like(m) for k, m in masks.items()})
    with pytest.raises(ValueError, match="strength"):
        Penalty(masks, fisher_scores(llama), -1.0)
