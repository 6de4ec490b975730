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

from esa.engine.faults.storage import WIDTH, WORD_DTYPE, StoredWeights
from esa.engine.models.targets import Target, scored_parameters
from esa.engine.perturbation.checksum import RestoreError, checksum, verify_restored
from esa.engine.perturbation.saved import raw_bits


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


def draw_bit_errors(model: torch.nn.Module | StoredWeights, rate: float, generator: torch.Generator,
                    exempt: Mapping[str, torch.Tensor] | None = None) -> BitErrorDraw:
    """Random bit errors over the scored matrices' stored bits at ``rate`` per bit; ``exempt``: target key → bool
    mask of weights none of whose bits may flip."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    stored = model if isinstance(model, StoredWeights) else native(model)
    targets = list(stored.targets.values())
    unknown = sorted(set(exempt or {}) - {t.key for t in targets})
    if unknown:
        raise KeyError(f"exempt masks name matrices that are not scored: {', '.join(unknown[:5])}")
    eligible = [(t, _eligible(t, exempt)) for t in targets]
    widths = [stored.width] * len(eligible)
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
class BitErrors:
    """Bit errors applied to the stored words; ``restore()`` writes every touched word's original value back."""

    stored: StoredWeights = field(repr=False)
    saved: list[tuple[str, torch.Tensor, torch.Tensor]] = field(repr=False)  # (key, parameter flat index, old words)
    n_flips: int
    n_weights: int
    restored: bool = False

    def restore(self) -> None:
        if self.restored:
            raise RestoreError("bit errors already restored")
        for key, index, old in reversed(self.saved):
            self.stored.write(key, index, old)
            if not torch.equal(self.stored.read(key, index), old):
                raise RestoreError(f"{key}: bit-flipped words differ after restore")
        self.restored = True


def _xor_masks(bits: torch.Tensor, inverse: torch.Tensor, n: int, fmt: str) -> torch.Tensor:
    """One XOR mask per distinct weight: the OR of its (distinct) flipped bits, in the format's word dtype."""
    width = WIDTH[fmt]
    summed = torch.zeros(n, dtype=torch.int64).scatter_add_(0, inverse, torch.ones_like(bits) << bits)
    if width < 64:
        summed = torch.where(summed >= (1 << (width - 1)), summed - (1 << width), summed)  # top bit → negative
    return summed.to(WORD_DTYPE[fmt])


def apply_bit_errors(stored: StoredWeights | torch.nn.Module, draw: BitErrorDraw) -> BitErrors:
    """Flip the drawn bits of the stored words in place (a model: its own dtype's bits), saving each touched word
    once."""
    if isinstance(stored, torch.nn.Module):
        stored = native(stored)
    saved = []
    n_weights = 0
    for key, (index, bits) in draw.flips.items():
        if int(bits.max()) >= stored.width:
            raise ValueError(f"{key}: bit {int(bits.max())} does not exist in a {stored.width}-bit {stored.format} "
                             "word")
        unique, inverse = torch.unique(index, return_inverse=True)
        old = stored.read(key, unique)
        saved.append((key, unique, old))
        mask = _xor_masks(bits, inverse, unique.numel(), stored.format).to(old.device)
        stored.write(key, unique, torch.bitwise_xor(old, mask))
        n_weights += unique.numel()
    return BitErrors(stored, saved, draw.n_flips, n_weights)


def native(model: torch.nn.Module) -> StoredWeights:
    """The model's scored matrices as stored words of their own dtype (fp32 or bf16), with no copy and no change."""
    targets = scored_parameters(model)
    dtypes = {t.parameter.dtype for t in targets}
    fmt = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(next(iter(dtypes))) if len(dtypes) == 1 else None
    if fmt is None:
        raise TypeError(f"bit errors in place need one float32 or bfloat16 dtype, not {sorted(map(str, dtypes))}")
    words = {t.key: raw_bits(t.parameter)[t.flat_offset: t.flat_offset + t.numel] for t in targets}
    return StoredWeights(fmt, {t.key: t for t in targets}, words, {}, in_place=True)


@contextmanager
def bit_errors(stored: StoredWeights | torch.nn.Module, draw: BitErrorDraw) -> Iterator[BitErrors]:
    """Apply on entry; on every exit restore and prove it by checksum of the touched parameters."""
    if isinstance(stored, torch.nn.Module):
        stored = native(stored)
    touched = {stored.targets[key].name: stored.targets[key].parameter.detach() for key in draw.flips}
    before = checksum(touched) if touched else None
    errors = apply_bit_errors(stored, draw)
    try:
        yield errors
    finally:
        errors.restore()
        if before is not None:
            verify_restored(before, touched)


__all__ = ["BitErrorDraw", "BitErrors", "apply_bit_errors", "bit_errors", "draw_bit_errors", "native"]
