"""The registry of sensitivity metrics: which pass each needs and how its accumulators become a score tensor.

A pass fills per-parameter accumulators; a metric turns them (and the current weight) into a score of the
parameter's shape, larger = more sensitive. Accumulators:

- ``grad_sum``  Σ_b n_b · ∂ℓ_b/∂w over microbatches b (n_b = predicted tokens in b, ℓ_b = mean token NLL of b),
  so ``grad_sum / n_tokens`` = ∂L/∂w with L the token-weighted mean NLL over all calibration tokens.
- ``grad_sq``   Σ_b (∂ℓ_b/∂w)² (per-sequence gradients when microbatches hold one sequence).
- ``act_sq``    Σ_t x_t² per input feature of an nn.Linear, over all non-padding positions.
- ``hess``      Σ_probes z ⊙ Hz (Hutchinson), H the Hessian of L.
- ``superweight`` a precomputed one-hot-ish score from the data-free detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from esa import names
from esa.names import check_implemented

PassKind = Literal["gradient", "hutchinson", "weights", "superweight"]
HUTCHINSON_MODES = ("abs", "obd")
# Elements per chunk when scores are computed: whole fp32 temporaries of an 8B model's matrices do not fit beside
# the model on one GPU, and on CPU small chunks keep the peak near model + accumulators + one score.
CHUNK_ELEMENTS = 1 << 22


@dataclass
class ScoreInputs:
    """What a metric sees for one parameter."""

    weight: torch.Tensor
    acc: dict[str, torch.Tensor]
    n_tokens: int
    n_batches: int  # microbatches of the gradient pass (= sequences when microbatch is 1)
    n_probes: int
    hutchinson_mode: str
    out_dtype: torch.dtype


@dataclass(frozen=True)
class Metric:
    name: str
    pass_kind: PassKind
    accumulators: frozenset[str]
    # Formatted with the pass settings (microbatch, probes, mode) into the artifact's estimator description.
    estimator: str
    compute: Callable[[ScoreInputs], torch.Tensor | None]
    # Said in the notes when compute returns None for a parameter.
    skip_note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    # p when the score factors as |w|^p · (a data factor): the tail null shuffles the data factor against |w|.
    # None: no weight factor, so no such null. (mode, p) pairs when it depends on the Hutchinson mode (pairs,
    # not a dict, keep the frozen dataclass hashable).
    weight_power: int | None | tuple[tuple[str, int | None], ...] = None


def _wide(t: torch.Tensor) -> torch.Tensor:
    """t in at least float32: the tensor itself (a view, never to be modified) when it already is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def chunked_map(fn: Callable[..., torch.Tensor], tensors: list[torch.Tensor], out_dtype: torch.dtype,
                extras: tuple = ()) -> torch.Tensor:
    """``fn(*row-chunks of tensors in at least float32, *extras)`` written chunk by chunk into a new out_dtype tensor.

    Chunks run along dim 0, so an extra that broadcasts over trailing dims (a per-column norm) stays whole. The
    chunks may be views of weights or accumulators: fn's first operation must make a new tensor (then it may go
    on in place).
    """
    first = tensors[0]
    out = torch.empty(first.shape, dtype=out_dtype, device=first.device)
    if first.dim() == 0:
        out.copy_(fn(*(_wide(t) for t in tensors), *extras))
        return out
    row = max(1, first[0].numel())
    step = max(1, CHUNK_ELEMENTS // row)
    for lo in range(0, first.shape[0], step):
        hi = min(lo + step, first.shape[0])
        out[lo:hi] = fn(*(_wide(t[lo:hi]) for t in tensors), *extras)
    return out


def _grad_x_weight(s: ScoreInputs) -> torch.Tensor:
    return chunked_map(lambda w, g: (w * g).abs_().div_(s.n_tokens), [s.weight, s.acc["grad_sum"]], s.out_dtype)


def _grad_squared(s: ScoreInputs) -> torch.Tensor:
    return chunked_map(lambda sq: sq / s.n_batches, [s.acc["grad_sq"]], s.out_dtype)


def _obd(s: ScoreInputs) -> torch.Tensor:
    return chunked_map(lambda w, sq: (sq * w).mul_(w).mul_(0.5 / s.n_batches), [s.weight, s.acc["grad_sq"]],
                       s.out_dtype)


def _act_mag(s: ScoreInputs) -> torch.Tensor | None:
    act = s.acc.get("act_sq")
    if act is None:
        return None
    norm = act.float().sqrt()
    return chunked_map(lambda w, n: w.abs().mul_(n), [s.weight], s.out_dtype, extras=(norm,))


def _hutchinson(s: ScoreInputs) -> torch.Tensor:
    if s.hutchinson_mode == "abs":
        return chunked_map(lambda h: h.abs().div_(s.n_probes), [s.acc["hess"]], s.out_dtype)
    return chunked_map(lambda w, h: (h * w).mul_(w).mul_(0.5 / s.n_probes), [s.weight, s.acc["hess"]],
                       s.out_dtype)


def _magnitude(s: ScoreInputs) -> torch.Tensor:
    return chunked_map(lambda w: w.abs(), [s.weight], s.out_dtype)


def _superweight(s: ScoreInputs) -> torch.Tensor:
    score = s.acc.get("superweight")
    if score is None:
        return torch.zeros(s.weight.shape, dtype=s.out_dtype, device=s.weight.device)
    return score.to(s.out_dtype)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("grad_x_weight", "gradient", frozenset({"grad_sum"}),
               "|w * dL/dw|, L = mean token NLL over all {n_tokens} calibration tokens (token-weighted: each "
               "sequence counts by its number of predicted tokens); gradient from microbatches of {microbatch} "
               "sequence(s)", _grad_x_weight, weight_power=1),
        Metric("grad_squared", "gradient", frozenset({"grad_sq"}),
               "empirical Fisher diagonal sum_b (dl_b/dw)^2 / n_b over n_b={n_batches} microbatches of "
               "{microbatch} sequence(s), l_b = mean token NLL of microbatch b{fisher_note}", _grad_squared),
        Metric("obd", "gradient", frozenset({"grad_sq"}),
               "Optimal Brain Damage saliency 0.5 * F_ii * w^2 with F the empirical Fisher diagonal of "
               "grad_squared", _obd, weight_power=2),
        Metric("act_mag", "gradient", frozenset({"act_sq"}),
               "Wanda |W_ij| * ||X_j||_2, X = inputs of the nn.Linear over all {n_input_tokens} non-padding "
               "calibration positions", _act_mag,
               skip_note="not the weight of an nn.Linear (embedding, norm, bias or packed experts): no input norm",
               weight_power=1),
        Metric("hutchinson_diag", "hutchinson", frozenset({"hess"}),
               "Hutchinson Hessian diagonal E_z[z * Hz], z Rademacher over all scored parameters at once, {probes} "
               "probe(s) on {hutchinson_windows} window(s) ({hutchinson_tokens} tokens), Hz by double backward "
               "with eager attention; reported as {hutchinson_report}", _hutchinson,
               weight_power=(("abs", None), ("obd", 2))),
        Metric("magnitude", "weights", frozenset(), "|w|", _magnitude),
        Metric("superweight", "superweight", frozenset({"superweight"}),
               "data-free super weight detector (down_proj input/output spikes, max|act|/p99.9|act| > "
               "{superweight_threshold} on a {superweight_tokens}-token prompt): the output spike ratio at each "
               "detected (row, col), zero elsewhere", _superweight),
    )
}

check_implemented("sensitivity metrics", METRICS, names.METRICS)

HUTCHINSON_REPORT = {"abs": "|diag|", "obd": "OBD saliency 0.5 * diag * w^2 (signed: the estimate can be negative)"}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}' (expected one of {', '.join(METRICS)})")
    return METRICS[name]


def weight_power(name: str, hutchinson_mode: str = "abs") -> int | None:
    """The p of a metric whose score is |w|^p · (data factor), None when it has no weight factor."""
    power = get_metric(name).weight_power
    return dict(power).get(hutchinson_mode) if isinstance(power, tuple) else power


def check_hutchinson_mode(mode: str) -> None:
    if mode not in HUTCHINSON_MODES:
        raise ValueError(f"hutchinson_mode must be one of {', '.join(HUTCHINSON_MODES)}, got '{mode}'")


def fold_(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None = None, alpha: float = 1.0) -> None:
    """acc += alpha * a (* b), in place; chunked in (at least) float32 when dtypes differ: no whole-matrix copy."""
    if a.dtype == acc.dtype and (b is None or b.dtype == acc.dtype):
        if b is None:
            acc.add_(a, alpha=alpha)
        else:
            acc.addcmul_(a, b, value=alpha)
        return
    flat, fa = acc.view(-1), a.reshape(-1)
    fb = None if b is None else b.reshape(-1)
    wide = torch.promote_types(acc.dtype, torch.float32)
    for lo in range(0, flat.numel(), CHUNK_ELEMENTS):
        hi = lo + CHUNK_ELEMENTS
        term = fa[lo:hi].to(wide) * alpha
        if fb is not None:
            term.mul_(fb[lo:hi].to(wide))
        flat[lo:hi].add_(term)
