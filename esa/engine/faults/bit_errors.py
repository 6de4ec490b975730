"""Random bit errors at a rate per stored bit, as a memory fault would make them, optionally sparing an exempt
set of weights (every bit of an exempt weight is protected, as ECC on those words would do).

A draw is a set of distinct (weight, bit) positions among the eligible bits of the scored matrices: the count is
Binomial(eligible bits, rate) and the positions are uniform without replacement, both from one seeded generator.
Applying it flips exactly those bits in the stored dtype (``esa.engine.perturbation.bitflip``) and keeps each
touched weight's raw bits, so ``restore()`` puts the model back bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.perturbation.bitflip import bit_width, int_view_dtype
from esa.engine.perturbation.checksum import checksum, verify_restored
from esa.engine.perturbation.saved import RestoresSaved, Saved, raw_bits


@dataclass(frozen=True)
class BitErrorDraw:
    """Per target key: flat indices (in the parameter) and bit numbers of the flips; distinct (index, bit) pairs."""

    flips: dict[str, tuple[torch.Tensor, torch.Tensor]]
    eligible_bits: int
    rate: float

    @property
    def n_flips(self) -> int:
        return sum(int(index.numel()) for index, _ in self.flips.values())


def _eligible(target: Target, exempt: Mapping[str, torch.Tensor] | None) -> torch.Tensor | None:
    """Flat indices (in the target's slice) of the weights that may take errors; None: all of them."""
    if not exempt or target.key not in exempt:
        return None
    mask = exempt[target.key]
    if tuple(mask.shape) != target.shape or mask.dtype != torch.bool:
        raise ValueError(f"{target.key}: exempt mask must be bool of shape {target.shape}")
    return torch.nonzero(~mask.reshape(-1).cpu(), as_tuple=False).reshape(-1)


def _distinct(total: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct integers uniform in [0, total), by drawing with replacement and topping up."""
    if count > total:
        raise ValueError(f"cannot draw {count} distinct positions from {total}")
    if count > total // 2:
        return torch.randperm(total, generator=generator)[:count]
    chosen = torch.empty(0, dtype=torch.int64)
    while chosen.numel() < count:
        more = torch.randint(0, total, (2 * (count - chosen.numel()) + 8,), generator=generator)
        merged = torch.cat([chosen, more])
        # Keep first occurrences in draw order, so the result does not depend on how many were drawn in a round.
        unique, inverse = torch.unique(merged, return_inverse=True)
        first = torch.full((unique.numel(),), merged.numel(), dtype=torch.int64).scatter_reduce(
            0, inverse, torch.arange(merged.numel()), reduce="amin")
        chosen = merged[torch.sort(first).values][:count]
    return chosen


def draw_bit_errors(model: torch.nn.Module, rate: float, generator: torch.Generator,
                    exempt: Mapping[str, torch.Tensor] | None = None) -> BitErrorDraw:
    """Random bit errors over the scored matrices' stored bits at ``rate`` per bit; ``exempt``: target key → bool
    mask of weights none of whose bits may flip."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    targets = scored_parameters(model)
    unknown = sorted(set(exempt or {}) - {t.key for t in targets})
    if unknown:
        raise KeyError(f"exempt masks name matrices that are not scored: {', '.join(unknown[:5])}")
    eligible = [(t, _eligible(t, exempt)) for t in targets]
    widths = [bit_width(t.parameter.dtype) for t, _ in eligible]
    sizes = [(t.numel if e is None else int(e.numel())) * w for (t, e), w in zip(eligible, widths)]
    total = sum(sizes)
    count = int(torch.binomial(torch.tensor(float(total)), torch.tensor(float(rate)), generator=generator)) \
        if total else 0
    positions = torch.sort(_distinct(total, count, generator)).values
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    flips = {}
    for i, ((target, allowed), width) in enumerate(zip(eligible, widths)):
        inside = positions[(positions >= offsets[i]) & (positions < offsets[i + 1])] - offsets[i]
        if not inside.numel():
            continue
        weight, bit = inside // width, inside % width
        local = weight if allowed is None else allowed[weight]
        flips[target.key] = (local + target.flat_offset, bit)
    return BitErrorDraw(flips, total, float(rate))


@dataclass
class BitErrors(RestoresSaved):
    """Bit errors applied in place; ``restore()`` writes every touched weight's original bits back."""

    saved: list[Saved] = field(repr=False)
    n_flips: int
    n_weights: int
    restored: bool = False

    touched_word = "bit-flipped"


def _xor_masks(bits: torch.Tensor, inverse: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """One XOR mask per distinct weight: the OR of its (distinct) flipped bits, in the signed integer view."""
    width = bit_width(dtype)
    summed = torch.zeros(n, dtype=torch.int64).scatter_add_(0, inverse, torch.ones_like(bits) << bits)
    if width < 64:
        summed = torch.where(summed >= (1 << (width - 1)), summed - (1 << width), summed)  # top bit → negative
    return summed.to(int_view_dtype(dtype))


def apply_bit_errors(model: torch.nn.Module, draw: BitErrorDraw) -> BitErrors:
    """Flip the drawn bits in place, saving each touched weight's raw bits once."""
    targets = {t.key: t for t in scored_parameters(model)}
    saved = []
    n_weights = 0
    with torch.no_grad():
        for key, (index, bits) in draw.flips.items():
            param = targets[key].parameter
            unique, inverse = torch.unique(index, return_inverse=True)
            raw = raw_bits(param)
            where = unique.to(raw.device)
            old = raw.index_select(0, where).clone()
            saved.append(Saved(targets[key].name, param, where, old))
            mask = _xor_masks(bits, inverse, unique.numel(), param.dtype).to(raw.device)
            raw.index_copy_(0, where, torch.bitwise_xor(old, mask))
            n_weights += unique.numel()
    return BitErrors(saved, draw.n_flips, n_weights)


@contextmanager
def bit_errors(model: torch.nn.Module, draw: BitErrorDraw) -> Iterator[BitErrors]:
    """Apply on entry; on every exit restore and prove it by checksum of the touched tensors."""
    names = sorted({n for n in (t.name for t in scored_parameters(model) if t.key in draw.flips)})
    before = checksum(model, names) if names else None
    errors = apply_bit_errors(model, draw)
    try:
        yield errors
    finally:
        errors.restore()
        if before is not None:
            verify_restored(before, model)


__all__ = ["BitErrorDraw", "BitErrors", "apply_bit_errors", "bit_errors", "draw_bit_errors"]
