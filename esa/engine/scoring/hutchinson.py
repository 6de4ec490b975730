"""Hutchinson estimate of the Hessian diagonal, diag(H) ≈ mean over probes of z ⊙ Hz, z Rademacher.

One probe draws z over all scored parameters at once. For each microbatch b of a probe, a backward with
``create_graph`` gives g_b = ∂ℓ_b/∂w; a second backward of Σ_p ⟨g_b,p, z_p⟩ gives H_b z. Since
H = Σ_b (n_b/N) H_b for L = Σ_b (n_b/N) ℓ_b and z is fixed within a probe, Σ_b (n_b/N) z ⊙ H_b z = z ⊙ Hz.

Memory: parameter hooks turn each gradient into its scalar ⟨g, z⟩ (and each Hz into its fold) as soon as it is
accumulated and drop ``.grad``, so neither a full gradient nor a full Hz is held. z is cached per probe (one copy
of the scored weights) or regenerated from its seed where that copy would not fit (``cache_z=False``); both give
the same z.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from esa.engine.scoring.metrics import fold_


def probe_seed(seed: int, probe: int, index: int) -> int:
    """Independent seed per (run seed, probe, parameter index)."""
    return int(np.random.SeedSequence([seed, probe, index]).generate_state(1, np.uint64)[0] >> 1)


# Its own stream: the run's seed also draws the probes, and which windows are used must not depend on them.
_SUBSET_STREAM = 0x48_75_74_63  # "Hutc"


def window_subset(n_windows: int, size: int | None, seed: int) -> list[int]:
    """Indices of the calibration windows the probes use, in corpus order: all of them, or ``size`` drawn
    uniformly without replacement with the run's seed. The first windows of a corpus tend to be a few documents;
    a uniform draw spreads the curvature estimate over the whole calibration text."""
    if size is None or size >= n_windows:
        return list(range(n_windows))
    if size <= 0:
        raise ValueError(f"hutchinson_windows must be positive, got {size}")
    rng = np.random.default_rng([seed, _SUBSET_STREAM])
    return sorted(int(i) for i in rng.choice(n_windows, size=size, replace=False))


def rademacher(like: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=like.device)
    gen.manual_seed(seed)
    z = torch.randint(0, 2, like.shape, generator=gen, device=like.device, dtype=like.dtype)
    return z.mul_(2).sub_(1)


class _DotZ(torch.autograd.Function):
    """⟨g, z⟩ whose backward recomputes z instead of saving it (z may be regenerated from its seed)."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, z_of: Callable[[], torch.Tensor]) -> torch.Tensor:
        ctx.z_of = z_of
        return torch.dot(g.reshape(-1), z_of().reshape(-1))  # no g-sized temporary

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        z = ctx.z_of()
        # The probe's root sums the terms, so grad_out is exactly 1: skip a weight-sized multiply. Autograd does
        # not write into a returned gradient that is referenced elsewhere (the z cache), so z is safe to return.
        return (z if bool(grad_out == 1) else grad_out * z), None


class _ProbeState:
    def __init__(self, params: list[tuple[str, torch.nn.Parameter]], seed: int, cache_z: bool):
        self.params, self.seed, self.cache_z = params, seed, cache_z
        self.probe = 0
        self.cache: dict[int, torch.Tensor] = {}
        self.phase = "first"
        self.terms: list[torch.Tensor] = []
        self.weight = 0.0

    def start_probe(self, probe: int) -> None:
        self.probe = probe
        self.cache.clear()

    def z(self, index: int) -> torch.Tensor:
        if index in self.cache:
            return self.cache[index]
        z = rademacher(self.params[index][1], probe_seed(self.seed, self.probe, index))
        if self.cache_z:
            self.cache[index] = z
        return z


def hutchinson_sums(params: list[tuple[str, torch.nn.Parameter]],
                    losses: Callable[[], Iterable[tuple[torch.Tensor, float]]], *, probes: int, seed: int,
                    accum_dtype: torch.dtype = torch.float32, cache_z: bool = True,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Σ over probes of z ⊙ Hz per parameter (divide by ``probes`` for the estimate).

    ``losses()`` runs the model once over the probe's microbatches, yielding ``(loss_b, n_b / N)``; only the
    listed parameters may require grad. Attention must support double backward (eager attention).
    """
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    acc = {name: torch.zeros(p.shape, dtype=accum_dtype, device=p.device) for name, p in params}
    state = _ProbeState(params, seed, cache_z)

    def make_hook(index: int, name: str):
        def hook(p: torch.nn.Parameter) -> None:
            g, p.grad = p.grad, None
            if g is None:
                return
            if state.phase == "first":
                if g.requires_grad:  # a gradient constant in the weights contributes no curvature
                    with torch.enable_grad():
                        state.terms.append(_DotZ.apply(g, lambda: state.z(index)))
            else:
                fold_(acc[name], state.z(index), g.detach(), alpha=state.weight)
        return hook

    handles = [p.register_post_accumulate_grad_hook(make_hook(i, name)) for i, (name, p) in enumerate(params)]
    saved = [p.grad for _, p in params]
    for _, p in params:
        p.grad = None
    try:
        with warnings.catch_warnings():
            # The hooks drop .grad at once, so the parameter/gradient reference cycle this warns about never forms.
            warnings.filterwarnings("ignore", message=".*create_graph=True.*")
            for probe in tqdm(range(probes), desc="hutchinson", disable=not progress, mininterval=2.0):
                state.start_probe(probe)
                for loss, weight in losses():
                    state.phase, state.terms = "first", []
                    loss.backward(create_graph=True)
                    terms, state.terms = state.terms, []
                    del loss
                    if terms:
                        state.phase, state.weight = "second", float(weight)
                        torch.stack([t.float() for t in terms]).sum().backward()
                    del terms
    finally:
        for handle in handles:
            handle.remove()
        for (_, p), grad in zip(params, saved):
            p.grad = grad
        state.cache.clear()
    return acc
