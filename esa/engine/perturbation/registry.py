"""Phase-3 perturbation registry: each entry is a name, a frozen params dataclass and a function computing the
new values of the touched elements from their old values (plus, where needed, the selection's scores, the
calibration gradient, or the seeded generator). Some entries first change which elements are touched
(``correlated`` widens each weight to its row/column/head/matrix; ``bit_flip`` keeps a seeded fraction ``prob``).
Applying and restoring live in ``esa.engine.perturbation.apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Union

import numpy as np
import torch

from esa.engine.perturbation.bitflip import Bit, flip_bits, resolve_bits
from esa.engine.perturbation.controls import matrix_geometry
from esa.names import PERTURBATIONS, check_implemented

ParamSource = Union[torch.nn.Module, Mapping[str, torch.Tensor]]
Grad = Union[Mapping[str, torch.Tensor], Callable[[], Mapping[str, torch.Tensor]]]


# ----------------------------------------------------------------------------------------------------------------
# Parameters of each perturbation


@dataclass(frozen=True)
class ZeroParams:
    pass


@dataclass(frozen=True)
class SignFlipParams:
    pass


@dataclass(frozen=True)
class ScaleParams:
    factor: float = 0.0


@dataclass(frozen=True)
class GaussParams:
    """σ = scale·|w| per weight (``abs``), or scale·std of the whole matrix (``tensor_std``)."""

    scale: float = 1.0
    sigma_mode: Literal["abs", "tensor_std"] = "abs"


@dataclass(frozen=True)
class BitFlipParams:
    """``prob``: fraction of the targeted weights flipped, matrix by matrix: max(1, round(prob·n)) of a matrix's
    n (half up), chosen with the seed. Sets with the same per-matrix sizes flip the same per-matrix counts."""

    bit: Bit = "exponent_msb"
    prob: float = 1.0


@dataclass(frozen=True)
class GradStepParams:
    """w ← w ± ε·sign(g), g = ∂(mean calibration NLL)/∂w; ε absolute or ε·|w| (``rel``)."""

    eps: float = 0.1
    direction: Literal["ascend", "descend"] = "ascend"
    eps_mode: Literal["rel", "abs"] = "rel"


@dataclass(frozen=True)
class CorrelatedParams:
    """Widen each selected weight to its row / column / attention head / whole matrix, then apply ``inner``.

    ``head``: rows of q/k/v and columns of o (transposed for GPT-2's Conv1D) in blocks of ``head_dim`` (default
    from the model config). ``others`` says what ``head`` does with non-attention matrices.
    """

    unit: Literal["row", "col", "head", "matrix"] = "row"
    inner: Literal["zero", "gauss_noise", "sign_flip"] = "zero"
    scale: float = 1.0  # inner gauss_noise σ multiplier
    sigma_mode: Literal["abs", "tensor_std"] = "abs"
    head_dim: int | None = None
    others: Literal["error", "row", "col", "matrix", "skip"] = "error"


@dataclass(frozen=True)
class AdaptiveParams:
    """Gaussian noise with σ_i = scale·|w_i|·|score_i| / max|score| (max over the selection, or per matrix)."""

    scale: float = 1.0
    normalize: Literal["global", "per_matrix"] = "global"
    max_score: float | None = None  # fixed normaliser, e.g. the super set's max for a control with borrowed scores


# ----------------------------------------------------------------------------------------------------------------
# What a perturbation function sees


@dataclass
class Group:
    """The touched elements of one matrix (a parameter, or one expert slice of it)."""

    tensor: str
    expert: int | None
    component: str
    index: np.ndarray  # int64 flat indices into the whole parameter
    score: np.ndarray | None  # float64 per element; None once a perturbation widened the set


@dataclass
class Touch:
    """One matrix's touched elements when its new values are computed."""

    tensor: str
    expert: int | None
    matrix: torch.Tensor  # detached 2-D view of the matrix (read only)
    index: torch.Tensor  # flat indices into the parameter, on its device
    old: torch.Tensor  # old values, stored dtype, on the parameter's device
    score: torch.Tensor | None  # float64, per element
    score_max: float | None
    grad: torch.Tensor | None  # gradient at the touched elements
    generator: torch.Generator  # CPU generator: draws are device-independent

    def compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.old.dtype == torch.float64 else torch.float32

    def randn(self) -> torch.Tensor:
        draw = torch.randn(self.old.numel(), generator=self.generator, dtype=self.compute_dtype())
        return draw.to(self.old.device)


@dataclass
class ExpandContext:
    params: Mapping[str, torch.Tensor]
    model: torch.nn.Module | None
    generator: torch.Generator


@dataclass(frozen=True)
class Perturbation:
    name: str
    params: type
    values: Callable[[Touch, Any], torch.Tensor]
    expand: Callable[[list[Group], Any, ExpandContext], list[Group]] | None = None
    needs_grad: bool = False
    needs_score: bool = False


REGISTRY: dict[str, Perturbation] = {}


def register(entry: Perturbation) -> Perturbation:
    if entry.name in REGISTRY:
        raise ValueError(f"perturbation '{entry.name}' registered twice")
    REGISTRY[entry.name] = entry
    return entry


def get_perturbation(name: str) -> Perturbation:
    if name not in REGISTRY:
        raise KeyError(f"unknown perturbation '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


# ----------------------------------------------------------------------------------------------------------------
# The perturbations


def _zero(t: Touch, p: ZeroParams) -> torch.Tensor:
    return torch.zeros_like(t.old)


def _sign_flip(t: Touch, p: SignFlipParams) -> torch.Tensor:
    return -t.old  # flips the sign bit only, exact in every dtype


def _scale(t: Touch, p: ScaleParams) -> torch.Tensor:
    # In the compute dtype, so a factor beyond the stored range overflows to inf as it would in the model.
    return (t.old.to(t.compute_dtype()) * torch.tensor(p.factor, dtype=t.compute_dtype())).to(t.old.dtype)


# Noise perturbations compute noise = level · (one standard-normal draw) · base, with the draw depending only on
# the seed and the touched elements: a dose series with a fixed seed then uses common random numbers, and level
# 2a is exactly twice level a's noise (before the sum is rounded to the stored dtype).


def _noise(t: Touch, level: float, base: torch.Tensor) -> torch.Tensor:
    return level * (t.randn() * base)


def _gauss(t: Touch, p: GaussParams) -> torch.Tensor:
    w = t.old.to(t.compute_dtype())
    if p.sigma_mode == "abs":
        base = w.abs()
    elif p.sigma_mode == "tensor_std":
        base = t.matrix.to(t.compute_dtype()).std()
    else:
        raise ValueError(f"unknown sigma_mode '{p.sigma_mode}' (expected abs or tensor_std)")
    return (w + _noise(t, p.scale, base)).to(t.old.dtype)


def _bit_flip(t: Touch, p: BitFlipParams) -> torch.Tensor:
    bits = resolve_bits(p.bit, t.old.dtype, t.old.numel(), t.generator)
    return flip_bits(t.old, bits.to(t.old.device))


def kept_count(prob: float, n: int) -> int:
    """How many of a matrix's n targeted weights a bit flip with ``prob`` flips: round(prob·n) half up, >= 1."""
    return 0 if n == 0 else max(1, int(np.floor(prob * n + 0.5)))


def _keep_fraction(groups: list[Group], p: BitFlipParams, ctx: ExpandContext) -> list[Group]:
    # Per matrix, not over the whole set: a super set and its control have the same per-matrix sizes, so they
    # then flip the same number of weights in each matrix (a set-wide draw would not).
    if not 0 < p.prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {p.prob}")
    if p.prob == 1:
        return groups
    out = []
    for g in groups:
        m = kept_count(p.prob, len(g.index))
        if m == 0:
            continue
        keep = np.zeros(len(g.index), dtype=bool)
        keep[torch.randperm(len(g.index), generator=ctx.generator)[:m].numpy()] = True
        out.append(Group(g.tensor, g.expert, g.component, g.index[keep], None if g.score is None else g.score[keep]))
    return out


def _grad_step(t: Touch, p: GradStepParams) -> torch.Tensor:
    if t.grad is None:
        raise ValueError("grad_step needs the calibration gradient")
    w = t.old.to(t.compute_dtype())
    step = p.eps if p.eps_mode == "abs" else p.eps * w.abs()
    sign = {"ascend": 1.0, "descend": -1.0}[p.direction]
    return (w + sign * step * torch.sign(t.grad.to(w.device, w.dtype))).to(t.old.dtype)


def _adaptive(t: Touch, p: AdaptiveParams) -> torch.Tensor:
    if t.score is None or torch.isnan(t.score).any():
        raise ValueError(f"adaptive needs a score for every selected weight ({t.tensor} has none or NaN); "
                         "give a control the super set's scores with controls.borrow_scores")
    top = p.max_score if p.max_score is not None else t.score_max
    if not top or top <= 0:
        raise ValueError("adaptive: the maximum |score| must be > 0")
    w = t.old.to(t.compute_dtype())
    rel = (t.score.abs() / top).to(w.device, w.dtype)
    return (w + _noise(t, p.scale, w.abs() * rel)).to(t.old.dtype)


_INNER = {"zero": (_zero, ZeroParams), "sign_flip": (_sign_flip, SignFlipParams), "gauss_noise": (_gauss, GaussParams)}


def _correlated(t: Touch, p: CorrelatedParams) -> torch.Tensor:
    fn, kind = _INNER[p.inner]
    inner = GaussParams(p.scale, p.sigma_mode) if kind is GaussParams else kind()
    return fn(t, inner)


def head_dim_of(model: torch.nn.Module | None) -> int | None:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hd = getattr(cfg, "head_dim", None)
    if hd:
        return int(hd)
    heads, hidden = getattr(cfg, "num_attention_heads", None), getattr(cfg, "hidden_size", None)
    return hidden // heads if heads and hidden else None


def _is_conv1d(model: torch.nn.Module | None, name: str) -> bool:
    if model is None or "." not in name:
        return False
    try:
        return type(model.get_submodule(name.rsplit(".", 1)[0])).__name__ == "Conv1D"
    except AttributeError:
        return False


def _widen(local: np.ndarray, rows: int, cols: int, unit: str, block: int = 1) -> np.ndarray:
    """Every local flat index of the rows / columns (in blocks of ``block``) / matrix holding ``local``."""
    if unit == "matrix":
        return np.arange(rows * cols, dtype=np.int64)
    if unit == "row":
        start = np.unique(local // cols // block) * block
        r = (start[:, None] + np.arange(block)).ravel()
        return (r[:, None] * cols + np.arange(cols)).ravel()
    start = np.unique(local % cols // block) * block
    c = (start[:, None] + np.arange(block)).ravel()
    return (np.arange(rows)[:, None] * cols + c[None, :]).ravel()


def _expand_correlated(groups: list[Group], p: CorrelatedParams, ctx: ExpandContext) -> list[Group]:
    out = []
    for g in groups:
        rows, cols, offset = matrix_geometry(ctx.params[g.tensor], g.expert)
        local = g.index - offset
        unit, block = p.unit, 1
        if unit == "head":
            axis = {"attn_q": "row", "attn_k": "row", "attn_v": "row", "attn_o": "col"}.get(g.component)
            if axis is None:
                if g.component == "attn_qkv":
                    raise ValueError(f"{g.tensor}: head blocks of a fused qkv projection are not supported")
                if p.others == "skip":
                    continue
                if p.others == "error":
                    raise ValueError(f"{g.tensor} ({g.component}) has no attention heads; set others= to "
                                     "row/col/matrix/skip")
                unit = p.others
            else:
                block = p.head_dim or head_dim_of(ctx.model)
                if not block:
                    raise ValueError("unit=head needs head_dim (or a model with a config)")
                if _is_conv1d(ctx.model, g.tensor):  # stored (in, out): heads run along the other axis
                    axis = "col" if axis == "row" else "row"
                if (rows if axis == "row" else cols) % block:
                    raise ValueError(f"{g.tensor}: {axis} count is not a multiple of head_dim {block}")
                unit = axis
        out.append(Group(g.tensor, g.expert, g.component, _widen(local, rows, cols, unit, block) + offset, None))
    return out


for _entry in (
    Perturbation("zero", ZeroParams, _zero),
    Perturbation("sign_flip", SignFlipParams, _sign_flip),
    Perturbation("scale", ScaleParams, _scale),
    Perturbation("gauss_noise", GaussParams, _gauss),
    Perturbation("bit_flip", BitFlipParams, _bit_flip, expand=_keep_fraction),
    Perturbation("grad_step", GradStepParams, _grad_step, needs_grad=True),
    Perturbation("correlated", CorrelatedParams, _correlated, expand=_expand_correlated),
    Perturbation("adaptive", AdaptiveParams, _adaptive, needs_score=True),
):
    register(_entry)
check_implemented("perturbations", REGISTRY, PERTURBATIONS)

# Spec field (PerturbRun) → params field, per perturbation; ``scale`` is the dose (one value per level).
_SPEC_FIELDS = {
    "scale": {"scale": "factor"},
    "gauss_noise": {"scale": "scale", "sigma_mode": "sigma_mode"},
    "bit_flip": {"bit": "bit", "prob": "prob"},
    "grad_step": {"scale": "eps", "direction": "direction", "eps_mode": "eps_mode"},
    "correlated": {"scale": "scale", "sigma_mode": "sigma_mode", "unit": "unit", "inner": "inner",
                   "head_dim": "head_dim", "others": "others"},
    "adaptive": {"scale": "scale", "normalize": "normalize", "max_score": "max_score"},
}


def params_from_spec(name: str, spec: Mapping[str, Any], level: float | None = None) -> Any:
    """The params dataclass of perturbation ``name`` from a run's resolved fields (``level`` overrides scale)."""
    entry = get_perturbation(name)
    values = dict(spec)
    if level is not None:
        values["scale"] = level
    kwargs = {dst: values[src] for src, dst in _SPEC_FIELDS.get(name, {}).items() if src in values}
    return entry.params(**kwargs)
