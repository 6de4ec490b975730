"""Real IEEE-754 bit flips in the stored dtype: XOR of the raw bits, never a float-level rescale.

A float tensor is viewed as the signed integer dtype of the same width (no copy), XORed with ``1 << bit`` and
viewed back. The sign bit of a signed integer is its most negative value, so the mask for the top bit is built as
``-(1 << (width - 1))`` rather than overflowing a positive constant. Flipping the same bits twice restores the
original bit pattern exactly (NaN payloads included).
"""

from __future__ import annotations

from typing import Literal

import torch

# Same-width signed integer views of the float dtypes a model may be stored in.
INT_VIEW: dict[torch.dtype, torch.dtype] = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
# Index of the most significant exponent bit (sign bit is width - 1).
EXPONENT_MSB: dict[torch.dtype, int] = {torch.float64: 62, torch.float32: 30, torch.float16: 14, torch.bfloat16: 14}
MANTISSA_BITS: dict[torch.dtype, int] = {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}

Bit = Literal["exponent_msb", "random"] | int


def int_view_dtype(dtype: torch.dtype) -> torch.dtype:
    """The signed integer dtype of the same width as ``dtype`` (any dtype: floats, ints, 1-byte types)."""
    if dtype in INT_VIEW:
        return INT_VIEW[dtype]
    width = torch.empty((), dtype=dtype).element_size()
    return {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[width]


def bit_width(dtype: torch.dtype) -> int:
    if dtype not in INT_VIEW:
        raise TypeError(f"bit flips are defined for {', '.join(map(str, INT_VIEW))}, not {dtype}")
    return torch.empty((), dtype=dtype).element_size() * 8


def exponent_msb(dtype: torch.dtype) -> int:
    bit_width(dtype)
    return EXPONENT_MSB[dtype]


def exponent_field(values: torch.Tensor) -> torch.Tensor:
    """The biased exponent field of each value's stored bits (int32, same shape and device).

    Equal fields mean the same binary exponent of |w| in the stored dtype; zero and subnormals share field 0,
    inf and NaN have the all-ones field. Computed in the integer view's own width (no widened copy).
    """
    width = bit_width(values.dtype)
    shift = MANTISSA_BITS[values.dtype]
    ints = values.contiguous().view(INT_VIEW[values.dtype])
    # The arithmetic shift drags the sign bit along; the mask keeps only the exponent bits.
    return ((ints >> shift) & ((1 << (width - 1 - shift)) - 1)).to(torch.int32)


def masks(dtype: torch.dtype, bits: torch.Tensor | int, device: torch.device | str = "cpu") -> torch.Tensor:
    """XOR masks ``1 << bit`` as the signed integer view dtype of ``dtype`` (top bit = most negative value)."""
    width = bit_width(dtype)
    bits = torch.as_tensor(bits, dtype=torch.int64, device=device)
    if ((bits < 0) | (bits >= width)).any():
        raise ValueError(f"bit index out of range 0..{width - 1} for {dtype}: {bits.min()}..{bits.max()}")
    wide = torch.ones_like(bits) << bits  # int64: exact for widths up to 32; 1 << 63 wraps to int64 min as wanted
    if width < 64:
        wide = torch.where(bits == width - 1, wide - (1 << width), wide)  # 2^(w-1) → -2^(w-1)
    return wide.to(INT_VIEW[dtype])


def resolve_bits(bit: Bit, dtype: torch.dtype, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bit index per element: one fixed bit, the top exponent bit, or a uniformly random bit (seeded)."""
    width = bit_width(dtype)
    if bit == "exponent_msb":
        return torch.full((n,), exponent_msb(dtype), dtype=torch.int64)
    if bit == "random":
        return torch.randint(0, width, (n,), generator=generator, dtype=torch.int64)
    if isinstance(bit, bool) or not isinstance(bit, int):
        raise ValueError(f"bit must be 'exponent_msb', 'random' or an integer, got {bit!r}")
    if not 0 <= bit < width:
        raise ValueError(f"bit {bit} out of range 0..{width - 1} for {dtype}")
    return torch.full((n,), bit, dtype=torch.int64)


def flip_bits(values: torch.Tensor, bits: torch.Tensor | int) -> torch.Tensor:
    """A new tensor: ``values`` with bit ``bits`` (scalar or one per element) flipped in its stored dtype."""
    mask = masks(values.dtype, bits, device=values.device)  # raises for dtypes without a defined flip
    ints = values.contiguous().view(INT_VIEW[values.dtype])
    mask = mask.expand_as(ints) if mask.dim() == 0 else mask.reshape(ints.shape)
    return torch.bitwise_xor(ints, mask).view(values.dtype)


def flip_bits_(tensor: torch.Tensor, flat_index: torch.Tensor, bits: torch.Tensor | int) -> torch.Tensor:
    """Flip bits of the elements at ``flat_index`` of a contiguous tensor, in place; returns ``tensor``."""
    if not tensor.is_contiguous():
        raise ValueError("flip_bits_ needs a contiguous tensor (flat indices address its storage)")
    index = flat_index.to(tensor.device, torch.int64).reshape(-1)
    mask = masks(tensor.dtype, bits, device=tensor.device)
    mask = mask.expand(index.shape) if mask.dim() == 0 else mask.reshape(index.shape)
    raw = tensor.detach().view(INT_VIEW[tensor.dtype]).view(-1)
    with torch.no_grad():
        raw.index_copy_(0, index, torch.bitwise_xor(raw.index_select(0, index), mask))
    return tensor


__all__ = ["INT_VIEW", "EXPONENT_MSB", "MANTISSA_BITS", "Bit", "int_view_dtype", "bit_width", "exponent_msb",
           "exponent_field", "masks", "resolve_bits", "flip_bits", "flip_bits_"]
