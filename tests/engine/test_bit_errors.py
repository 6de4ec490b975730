"""Random bit errors: a flip at a named bit of a named weight changes exactly that bit; drawn errors are distinct,
at the expected rate, uniform over bit positions, never touch an exempt (ECC-protected) weight, and restore bit
for bit."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.faults.bit_errors import BitErrorDraw, apply_bit_errors, bit_errors, draw_bit_errors
from esa.engine.models.targets import scored_parameters
from esa.engine.perturbation.bitflip import int_view_dtype


def tiny(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config).to(dtype)


def raw(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().reshape(-1).view(int_view_dtype(p.dtype)).clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("dtype", "bit"), [(torch.float32, 31), (torch.float32, 0), (torch.float32, 30),
                                            (torch.bfloat16, 15), (torch.bfloat16, 7)])
def test_a_flip_at_a_named_bit_of_a_named_weight_changes_exactly_that_bit(dtype, bit):
    model = tiny(dtype)
    key = "model.layers.1.mlp.down_proj.weight"
    before = raw(model)
    draw = BitErrorDraw({key: (torch.tensor([37]), torch.tensor([bit]))}, eligible_bits=0, rate=0.0)
    with bit_errors(model, draw) as errors:
        after = raw(model)
        assert errors.n_flips == errors.n_weights == 1
        for name in before:
            changed = torch.nonzero(before[name] != after[name]).reshape(-1).tolist()
            assert changed == ([37] if name == key else []), name
        xor = int(before[key][37]) ^ int(after[key][37])
        width = 16 if dtype == torch.bfloat16 else 32
        assert xor % (1 << width) == 1 << bit
    assert all(torch.equal(before[n], v) for n, v in raw(model).items())


def test_two_bits_of_one_weight_are_both_flipped_and_restored():
    model = tiny()
    key = "model.layers.0.self_attn.q_proj.weight"
    before = raw(model)
    draw = BitErrorDraw({key: (torch.tensor([5, 5, 9]), torch.tensor([31, 3, 22]))}, eligible_bits=0, rate=0.0)
    errors = apply_bit_errors(model, draw)
    after = raw(model)[key]
    assert (int(before[key][5]) ^ int(after[5])) % 2**32 == (1 << 31) | (1 << 3)
    assert (int(before[key][9]) ^ int(after[9])) % 2**32 == 1 << 22
    assert (errors.n_flips, errors.n_weights) == (3, 2)
    errors.restore()
    assert torch.equal(raw(model)[key], before[key])


def test_drawn_errors_are_distinct_at_the_rate_and_reproducible():
    model = tiny()
    n_bits = sum(t.numel for t in scored_parameters(model)) * 32
    rate = 2e-3
    draw = draw_bit_errors(model, rate, torch.Generator().manual_seed(1))
    assert draw.eligible_bits == n_bits
    mean, sd = n_bits * rate, math.sqrt(n_bits * rate * (1 - rate))
    assert abs(draw.n_flips - mean) < 5 * sd
    for index, bits in draw.flips.values():
        pairs = set(zip(index.tolist(), bits.tolist()))
        assert len(pairs) == index.numel() and all(0 <= b < 32 for b in bits.tolist())
    again = draw_bit_errors(model, rate, torch.Generator().manual_seed(1))
    assert {k: (i.tolist(), b.tolist()) for k, (i, b) in again.flips.items()} == \
        {k: (i.tolist(), b.tolist()) for k, (i, b) in draw.flips.items()}
    other = draw_bit_errors(model, rate, torch.Generator().manual_seed(2))
    assert other.flips.keys() != draw.flips.keys() or any(
        not torch.equal(other.flips[k][0], draw.flips[k][0]) for k in draw.flips)
    assert draw_bit_errors(model, 0.0, torch.Generator().manual_seed(1)).n_flips == 0


def test_bit_positions_are_uniform_over_the_word():
    model = tiny()
    draw = draw_bit_errors(model, 0.02, torch.Generator().manual_seed(3))
    bits = torch.cat([b for _, b in draw.flips.values()])
    counts = torch.bincount(bits, minlength=32).tolist()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_exempt_weights_take_no_error_and_are_left_out_of_the_rate():
    model = tiny()
    targets = scored_parameters(model)
    exempt = {t.key: torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) < 0.5
              for i, t in enumerate(targets)}
    n_exempt = sum(int(m.sum()) for m in exempt.values())
    draw = draw_bit_errors(model, 0.05, torch.Generator().manual_seed(4), exempt=exempt)
    assert draw.eligible_bits == (sum(t.numel for t in targets) - n_exempt) * 32
    assert draw.n_flips > 100
    for key, (index, _) in draw.flips.items():
        assert not exempt[key].reshape(-1)[index].any()
    before = raw(model)
    with bit_errors(model, draw):
        after = raw(model)
        for t in targets:
            hit = (before[t.name] != after[t.name]).reshape(t.shape)
            assert not (hit & exempt[t.key]).any()
    assert all(torch.equal(before[n], v) for n, v in raw(model).items())


def test_bad_input_is_refused():
    model = tiny()
    with pytest.raises(ValueError, match="rate"):
        draw_bit_errors(model, 1.5, torch.Generator())
    with pytest.raises(KeyError, match="not scored"):
        draw_bit_errors(model, 0.1, torch.Generator(), exempt={"nope": torch.zeros(1, dtype=torch.bool)})
