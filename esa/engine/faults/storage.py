"""A model's scored matrices held in a storage format (fp32, bf16, or int8 after symmetric per-row quantisation),
so that faults hit the stored words while the forward pass computes with their decoded values.

The format a weight is *stored* in decides what one flipped bit can do: an fp32 or bf16 exponent bit can turn a
weight into 1e38 or inf, an int8 bit moves a weight by at most 128 quantisation steps (twice the row's largest
|w|). Computation stays in the model's own dtype: the parameters carry the decoded values, and every change of a
stored word is written through to them. ``fp32`` on a float32 model holds no copy: its words are the parameters'
own bits.

int8 is symmetric per row of the stored layout (the output channel of nn.Linear): scale = max|w_row| / 127, code
= round(w / scale) clamped to [-127, 127], value = code · scale; an all-zero row gets scale 1.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.perturbation.checksum import checksum, verify_restored
from esa.engine.perturbation.saved import raw_bits

FORMATS = ("fp32", "bf16", "int8")
WIDTH = {"fp32": 32, "bf16": 16, "int8": 8}
WORD_DTYPE = {"fp32": torch.int32, "bf16": torch.int16, "int8": torch.int8}
INT8_MAX = 127


def _encode(weight: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(stored words as the format's integer dtype, per-row scale or None) of a 2-D float weight."""
    if fmt == "fp32":
        return weight.to(torch.float32).contiguous().view(torch.int32), None
    if fmt == "bf16":
        return weight.to(torch.bfloat16).contiguous().view(torch.int16), None
    amax = weight.abs().amax(dim=1).to(torch.float32)
    scale = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax))
    codes = torch.round(weight.to(torch.float32) / scale[:, None]).clamp_(-INT8_MAX, INT8_MAX)
    return codes.to(torch.int8), scale


def _decode(words: torch.Tensor, fmt: str, scale_rows: torch.Tensor | None) -> torch.Tensor:
    """float32 values of stored words (any shape); ``scale_rows``: the scale of each word's row (int8 only)."""
    if fmt == "fp32":
        return words.view(torch.float32)
    if fmt == "bf16":
        return words.view(torch.bfloat16).to(torch.float32)
    return words.to(torch.float32) * scale_rows


@dataclass
class StoredWeights:
    """Stored words per target key (flat, in the slice's own flat order) and, for int8, per-row scales. Flat
    indices given to its methods are *parameter* flat indices, as ``BitErrorDraw`` and the top-k tables use."""

    format: str
    targets: dict[str, Target] = field(repr=False)
    words: dict[str, torch.Tensor] = field(repr=False)
    scales: dict[str, torch.Tensor] = field(repr=False)
    in_place: bool = False  # the words are views of the parameters' own bits: writing them writes the parameters

    @property
    def width(self) -> int:
        return WIDTH[self.format]

    @property
    def word_dtype(self) -> torch.dtype:
        return WORD_DTYPE[self.format]

    def _local(self, key: str, flat_index: torch.Tensor) -> torch.Tensor:
        return flat_index.to(torch.int64).reshape(-1) - self.targets[key].flat_offset

    def _rows(self, key: str, local: torch.Tensor) -> torch.Tensor | None:
        if self.format != "int8":
            return None
        return self.scales[key][local // self.targets[key].shape[1]]

    def read(self, key: str, flat_index: torch.Tensor) -> torch.Tensor:
        """The stored words at these parameter flat indices (a copy)."""
        return self.words[key].index_select(0, self._local(key, flat_index).to(self.words[key].device)).clone()

    def decode(self, key: str, flat_index: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """The float32 values ``words`` would have at these parameter flat indices."""
        local = self._local(key, flat_index)
        scale = self._rows(key, local)
        return _decode(words, self.format, None if scale is None else scale.to(words.device))

    def write(self, key: str, flat_index: torch.Tensor, words: torch.Tensor) -> None:
        """Store ``words`` at these parameter flat indices and write their decoded values into the parameter."""
        target = self.targets[key]
        local = self._local(key, flat_index).to(self.words[key].device)
        with torch.no_grad():
            self.words[key].index_copy_(0, local, words.to(self.word_dtype))
            if self.in_place:
                return
            values = self.decode(key, local + target.flat_offset, words.to(self.word_dtype))
            flat = target.parameter.detach().view(-1)
            flat.index_copy_(0, local.to(flat.device) + target.flat_offset, values.to(flat.device, flat.dtype))

    def flipped_values(self, key: str, bit: int) -> torch.Tensor:
        """float32 value every weight of the slice would take with ``bit`` of its stored word flipped (2-D)."""
        target = self.targets[key]
        mask = word_masks(self.format, bit, device=self.words[key].device)
        words = torch.bitwise_xor(self.words[key], mask)
        scale = None
        if self.format == "int8":
            scale = self.scales[key].repeat_interleave(target.shape[1]).to(words.device)
        return _decode(words, self.format, scale).reshape(target.shape)

    def values(self, key: str) -> torch.Tensor:
        """float32 decoded values of the slice (2-D)."""
        target = self.targets[key]
        scale = None
        if self.format == "int8":
            scale = self.scales[key].repeat_interleave(target.shape[1]).to(self.words[key].device)
        return _decode(self.words[key], self.format, scale).reshape(target.shape)


def word_masks(fmt: str, bits: torch.Tensor | int, device: torch.device | str = "cpu") -> torch.Tensor:
    """XOR masks ``1 << bit`` in the format's word dtype (the top bit is the most negative value)."""
    width = WIDTH[fmt]
    bits = torch.as_tensor(bits, dtype=torch.int64, device=device)
    if ((bits < 0) | (bits >= width)).any():
        raise ValueError(f"bit index out of range 0..{width - 1} for {fmt}")
    wide = torch.ones_like(bits) << bits
    wide = torch.where(bits == width - 1, wide - (1 << width), wide)
    return wide.to(WORD_DTYPE[fmt])


@contextmanager
def stored_as(model: torch.nn.Module, fmt: str) -> Iterator[StoredWeights]:
    """Hold the scored matrices in ``fmt`` for the duration: the parameters take the decoded values on entry (fp32
    of a float32 model: unchanged) and get their original bits back on exit, proven by checksum."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown storage format '{fmt}': one of {', '.join(FORMATS)}")
    targets = scored_parameters(model)
    names = sorted({t.name for t in targets})
    before = checksum(model, names) if names else None
    originals = {name: raw_bits(p).clone() for name, p in _params(targets).items()} if _changes(fmt, targets) else {}
    words: dict[str, torch.Tensor] = {}
    scales: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for t in targets:
            if fmt == "fp32" and t.parameter.dtype == torch.float32:
                words[t.key] = raw_bits(t.parameter)[t.flat_offset: t.flat_offset + t.numel]  # a view
                continue
            code, scale = _encode(t.weight(), fmt)
            words[t.key] = code.reshape(-1).clone()
            if scale is not None:
                scales[t.key] = scale
            t.view(t.parameter.detach()).copy_(_decode(code, fmt, None if scale is None else scale[:, None]))
    try:
        yield StoredWeights(fmt, {t.key: t for t in targets}, words, scales, in_place=not _changes(fmt, targets))
    finally:
        with torch.no_grad():
            for name, param in _params(targets).items():
                if name in originals:
                    raw_bits(param).copy_(originals[name])
        if before is not None:
            verify_restored(before, model)


def _params(targets: list[Target]) -> dict[str, torch.nn.Parameter]:
    return {t.name: t.parameter for t in targets}


def _changes(fmt: str, targets: list[Target]) -> bool:
    return not (fmt == "fp32" and all(t.parameter.dtype == torch.float32 for t in targets))


__all__ = ["FORMATS", "WIDTH", "StoredWeights", "stored_as", "word_masks"]
