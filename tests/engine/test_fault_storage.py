"""Storage formats for faults: int8 symmetric per-row quantisation checked by hand, bf16 rounding, bit errors on the
stored words written through to the parameters, and the model given back bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.faults.bit_errors import BitErrorDraw, bit_errors, draw_bit_errors
from esa.engine.faults.storage import stored_as, word_masks
from esa.engine.models.targets import scored_parameters
from esa.engine.perturbation.bitflip import int_view_dtype

KEY = "model.layers.1.mlp.down_proj.weight"


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(config)


def raw(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().reshape(-1).view(int_view_dtype(p.dtype)).clone() for n, p in model.named_parameters()}


def test_int8_codes_and_scales_match_a_hand_computation_and_the_model_comes_back():
    model = tiny()
    weight = dict(model.named_parameters())[KEY]
    with torch.no_grad():
        weight[0, :4] = torch.tensor([0.5, -0.25, 0.1, 0.0])
        weight[0, 4:] = 0.0
        weight[1] = 0.0  # an all-zero row: scale 1, codes 0
    before = raw(model)
    with stored_as(model, "int8") as stored:
        scale = 0.5 / 127
        assert stored.scales[KEY][0].item() == pytest.approx(scale)
        assert stored.scales[KEY][1].item() == 1.0
        codes = stored.words[KEY][:4].tolist()
        assert codes == [127, round(-0.25 / scale), round(0.1 / scale), 0]
        assert torch.allclose(weight[0, :4], torch.tensor(codes, dtype=torch.float32) * scale)
        assert torch.equal(weight[1], torch.zeros(weight.shape[1]))
        # The top bit of an int8 code is worth -128 steps: code 127 becomes -1.
        assert stored.flipped_values(KEY, 7)[0, 0].item() == pytest.approx(-scale)
        assert stored.flipped_values(KEY, 0)[0, 0].item() == pytest.approx(126 * scale)
    assert all(torch.equal(before[n], v) for n, v in raw(model).items())


def test_bf16_storage_rounds_every_scored_weight_and_nothing_else():
    model = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scored = {t.name for t in scored_parameters(model)}
    with stored_as(model, "bf16"):
        for name, param in model.named_parameters():
            expected = before[name].to(torch.bfloat16).float() if name in scored else before[name]
            assert torch.equal(param.detach(), expected), name
    assert all(torch.equal(before[n], p.detach()) for n, p in model.named_parameters())


@pytest.mark.parametrize(("fmt", "bit", "steps"), [("int8", 7, -128), ("int8", 3, 8), ("bf16", 14, None)])
def test_a_flip_of_a_stored_word_moves_the_weight_by_exactly_that_bit(fmt, bit, steps):
    model = tiny()
    weight = dict(model.named_parameters())[KEY]
    index = 37
    with stored_as(model, fmt) as stored:
        old_word = int(stored.words[KEY][index])
        old_value = weight.detach().reshape(-1)[index].item()
        draw = BitErrorDraw({KEY: (torch.tensor([index]), torch.tensor([bit]))}, eligible_bits=0, rate=0.0)
        with bit_errors(stored, draw):
            new_word = int(stored.words[KEY][index])
            new_value = weight.detach().reshape(-1)[index].item()
            width = stored.width
            assert (old_word ^ new_word) % (1 << width) == 1 << bit
            if steps is not None:  # int8 two's complement: bit 7 is worth -128, bit b < 7 is worth 2^b
                if bit == 7:
                    assert new_word == (old_word - 128 if old_word >= 0 else old_word + 128)
                else:
                    assert new_word == (old_word - steps if old_word & (1 << bit) else old_word + steps)
                row = index // weight.shape[1]
                assert new_value == pytest.approx(new_word * stored.scales[KEY][row].item())
            else:
                flipped = torch.tensor([old_word], dtype=torch.int16) ^ word_masks("bf16", bit)
                assert new_value == flipped.view(torch.bfloat16).float().item()
        assert int(stored.words[KEY][index]) == old_word
        assert weight.detach().reshape(-1)[index].item() == old_value


def test_int8_errors_are_drawn_over_eight_bits_per_weight_and_spare_the_exempt_set():
    model = tiny()
    targets = scored_parameters(model)
    exempt = {KEY: torch.ones(targets[-1].shape, dtype=torch.bool)}
    with stored_as(model, "int8") as stored:
        draw = draw_bit_errors(stored, 0.01, torch.Generator().manual_seed(0), exempt=exempt)
        total = sum(t.numel for t in targets) - targets[-1].numel
        assert [t.key for t in targets][-1] == KEY
        assert draw.eligible_bits == total * 8
        assert KEY not in draw.flips
        assert all(int(bits.max()) < 8 for _, bits in draw.flips.values())
        snapshot = {k: v.clone() for k, v in stored.words.items()}
        with bit_errors(stored, draw) as errors:
            assert errors.n_flips == draw.n_flips > 0
            assert torch.equal(stored.words[KEY], snapshot[KEY])
        assert all(torch.equal(snapshot[k], v) for k, v in stored.words.items())


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="storage format"):
        with stored_as(tiny(), "fp8"):
            pass
