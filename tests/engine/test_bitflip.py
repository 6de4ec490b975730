"""Bit flips must equal an XOR of the stored bits, checked bit by bit against numpy's integer views."""

import numpy as np
import pytest
import torch

from esa.engine.perturbation.bitflip import exponent_field, exponent_msb, flip_bits, flip_bits_, masks, resolve_bits

SPECIAL = [0.0, -0.0, 1.0, -1.0, 1.5, 2.0, 3.0, 0.1, -7.25, 1e-40, 65504.0, 6e-8, float("inf"), float("-inf"),
           float("nan"), 1e30, -3e-30]


def _values(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([np.array(SPECIAL, dtype=np.float64), rng.standard_normal(200) * 10.0 ** rng.integers(
        -6, 6, 200)])


def _ref_bits(t: torch.Tensor) -> np.ndarray:
    """Stored bits as unsigned numpy integers, derived independently of torch's integer views."""
    if t.dtype == torch.float32:
        return t.numpy().view(np.uint32)
    if t.dtype == torch.float16:
        return t.numpy().view(np.uint16)
    if t.dtype == torch.bfloat16:  # bf16 is the upper half of a float32 (the widening conversion is exact)
        return (t.float().numpy().view(np.uint32) >> 16).astype(np.uint16)
    raise AssertionError(t.dtype)


def _utype(dtype):
    return np.uint32 if dtype == torch.float32 else np.uint16


@pytest.mark.parametrize("dtype, width", [(torch.float32, 32), (torch.float16, 16), (torch.bfloat16, 16)])
def test_every_bit_matches_numpy_xor(dtype, width):
    t = torch.tensor(_values(), dtype=torch.float64).to(dtype)
    before = _ref_bits(t)
    u = _utype(dtype)
    for bit in range(width):
        flipped = flip_bits(t, bit)
        assert flipped.dtype == dtype and flipped.shape == t.shape
        expected = before ^ u(1 << bit)
        np.testing.assert_array_equal(_ref_bits(flipped), expected)
        # exactly one bit differs in every element
        diff = _ref_bits(flipped) ^ before
        assert set(np.unique(diff).tolist()) == {1 << bit}
    np.testing.assert_array_equal(_ref_bits(t), before)  # the input is left as it was


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_random_bits_per_element_and_double_flip_restores(dtype):
    t = torch.tensor(_values(1), dtype=torch.float64).to(dtype)
    g = torch.Generator().manual_seed(5)
    bits = resolve_bits("random", dtype, t.numel(), g)
    width = 32 if dtype == torch.float32 else 16
    assert bits.min() >= 0 and bits.max() == width - 1 and len(torch.unique(bits)) == width
    flipped = flip_bits(t, bits)
    u = _utype(dtype)
    expected = _ref_bits(t) ^ (np.ones(t.numel(), dtype=np.uint64) << bits.numpy().astype(np.uint64)).astype(u)
    np.testing.assert_array_equal(_ref_bits(flipped), expected)
    back = flip_bits(flipped, bits)
    np.testing.assert_array_equal(_ref_bits(back), _ref_bits(t))  # NaN payloads included
    # same seed, same bits
    assert torch.equal(resolve_bits("random", dtype, t.numel(), torch.Generator().manual_seed(5)), bits)


def test_exponent_msb_and_sign_bit():
    assert exponent_msb(torch.float32) == 30
    assert exponent_msb(torch.float16) == 14
    assert exponent_msb(torch.bfloat16) == 14
    x = torch.tensor([1.0, 1.5, 0.5, 4.0, -6.0, 3.0])
    y = flip_bits(x, 30)
    # |w| in [1, 2): exponent 127 -> 255 (inf / NaN); below 1: times 2^128; from 4 on: times 2^-128;
    # in [2, 4) the biased exponent becomes 0, a subnormal
    assert y[0].item() == float("inf") and torch.isnan(y[1])
    assert y[2].item() == 0.5 * 2.0 ** 128
    assert y[3].item() == 4.0 * 2.0 ** -128 and y[4].item() == -6.0 * 2.0 ** -128
    assert y[5].item() == 0.5 * 2.0 ** -126
    assert torch.equal(flip_bits(x, 31), -x)
    assert torch.equal(flip_bits(x.half(), 15), -x.half())
    assert torch.equal(flip_bits(x.bfloat16(), 15), -x.bfloat16())
    assert masks(torch.float32, 31).item() == -(2 ** 31)
    assert masks(torch.float16, 15).item() == -(2 ** 15)
    assert masks(torch.float16, torch.tensor([0, 14, 15])).tolist() == [1, 2 ** 14, -(2 ** 15)]
    # fp16 exponent msb: 1.0 (0x3C00) -> 0x7C00 = inf
    assert flip_bits(torch.tensor([1.0], dtype=torch.float16), 14).item() == float("inf")


def test_in_place_flip_touches_only_indexed_elements():
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        t = torch.randn(7, 9).to(dtype)
        orig = t.clone()
        idx = torch.tensor([0, 5, 62, 30])
        flip_bits_(t, idx, torch.tensor([3, 14, 0, 9]))
        iv = torch.int32 if dtype == torch.float32 else torch.int16
        changed = torch.nonzero((t.view(iv) != orig.view(iv)).reshape(-1)).flatten()
        assert changed.tolist() == [0, 5, 30, 62]
        flip_bits_(t, idx, torch.tensor([3, 14, 0, 9]))
        assert torch.equal(t.view(iv), orig.view(iv))


def test_bad_bits_raise():
    with pytest.raises(ValueError):
        flip_bits(torch.ones(2), 32)
    with pytest.raises(ValueError):
        flip_bits(torch.ones(2, dtype=torch.float16), 16)
    with pytest.raises(ValueError):
        resolve_bits("top", torch.float32, 3)
    with pytest.raises(TypeError):
        flip_bits(torch.ones(2, dtype=torch.int32), 0)


@pytest.mark.parametrize("dtype, mantissa, exp_bits", [(torch.float32, 23, 8), (torch.float16, 10, 5),
                                                       (torch.bfloat16, 7, 8)])
def test_exponent_field_is_the_stored_exponent_bits(dtype, mantissa, exp_bits):
    t = torch.tensor(_values(2), dtype=torch.float64).to(dtype)
    field = exponent_field(t)
    assert field.dtype == torch.int32
    expected = (_ref_bits(t).astype(np.int64) >> mantissa) & ((1 << exp_bits) - 1)
    np.testing.assert_array_equal(field.numpy(), expected)
    # for normal numbers it is the binary exponent of |w| plus the bias, whatever the sign
    bias = (1 << (exp_bits - 1)) - 1
    v = t.double().numpy()
    normal = np.isfinite(v) & (np.abs(v) >= torch.finfo(dtype).tiny)
    np.testing.assert_array_equal(field.numpy()[normal] - bias, np.frexp(v[normal])[1] - 1)
    assert exponent_field(torch.tensor([0.0, -0.0, float("inf")], dtype=dtype)).tolist() == [0, 0, (1 << exp_bits) - 1]


def test_exponent_field_float64_by_hand():
    assert exponent_field(torch.tensor([1.0, -3.0, 0.25, 2.0 ** -1030], dtype=torch.float64)).tolist() == \
        [1023, 1024, 1021, 0]
