"""The elements an in-place change touched, kept as raw bits so that writing them back restores the model bit for
bit (NaN payloads and signed zeros included). Perturbations and pruning both save and restore through here."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from esa.engine.perturbation.bitflip import int_view_dtype
from esa.engine.perturbation.checksum import RestoreError


@dataclass
class Saved:
    """One matrix's touched elements: flat indices and the raw bits they held."""

    tensor: str
    param: torch.Tensor = field(repr=False)
    index: torch.Tensor = field(repr=False)
    old: torch.Tensor = field(repr=False)  # integer view of the old values (bit-exact, NaN payloads included)

    @property
    def nbytes(self) -> int:
        return self.index.numel() * self.index.element_size() + self.old.numel() * self.old.element_size()


def raw_bits(param: torch.Tensor) -> torch.Tensor:
    """The parameter's storage as a flat integer view: flat indices address it, writes change the parameter."""
    if not param.is_contiguous():
        raise ValueError("parameters must be contiguous: flat indices address their storage")
    return param.detach().view(int_view_dtype(param.dtype)).view(-1)


def restore_saved(saved: list[Saved], what: str, check: bool = True) -> None:
    """Write the saved bits back, last saved first; ``check`` re-reads the written elements (O(touched))."""
    with torch.no_grad():
        for s in reversed(saved):
            raw_bits(s.param).index_copy_(0, s.index, s.old)
        if check:
            for s in saved:
                if not torch.equal(raw_bits(s.param).index_select(0, s.index), s.old):
                    raise RestoreError(f"{s.tensor}: {what} elements differ after restore")


class RestoresSaved:
    """What a record of an in-place change (it holds ``saved`` and ``restored``) offers: the tensors it touched,
    the bytes its saved state takes, and ``restore()``, which writes every saved element's original bits back."""

    touched_word = "touched"  # how restore errors name the elements

    @property
    def tensors(self) -> list[str]:
        return sorted({s.tensor for s in self.saved})

    @property
    def saved_bytes(self) -> int:
        return sum(s.nbytes for s in self.saved)

    def restore(self, check: bool = True) -> None:
        """Write the saved bits back (last saved first); ``check`` re-reads them (O(touched))."""
        restore_saved(self.saved, self.touched_word, check)
        self.restored = True
