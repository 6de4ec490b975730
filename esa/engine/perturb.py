"""Phase-3 perturbations: one registry, applied in place to the touched weights only, restored bit-exactly.

A perturbation is a registry entry: a name, a frozen params dataclass and a function that computes the new values
of the touched elements from their old values (plus, where it needs them, the selection's scores, the calibration
gradient, or the seeded generator). Some entries first change which elements are touched (``correlated`` widens
each weight to its row/column/head/matrix; ``bit_flip`` keeps a seeded fraction ``prob``).

``apply`` gathers the touched elements' raw bits (an integer view of the stored dtype, so NaN payloads survive),
keeps only those and their flat indices, and writes the new values in place; ``Applied.restore`` writes the raw
bits back. Nothing else of the model is copied. ``checksum``/``verify_restored`` prove the restore against the
state before the condition.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Union

import numpy as np
import pandas as pd
import torch

from esa.engine.bitflip import Bit, flip_bits, int_view_dtype, resolve_bits
from esa.engine.checksum import Checksum, Method, RestoreError, checksum, verify_restored
from esa.engine.controls import matrix_geometry
from esa.engine.targets import component_of

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
    """``prob``: fraction of the targeted weights flipped (max(1, round(prob·n)) of them, chosen with the seed)."""

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


def _gauss(t: Touch, p: GaussParams) -> torch.Tensor:
    w = t.old.to(t.compute_dtype())
    if p.sigma_mode == "abs":
        sigma = p.scale * w.abs()
    elif p.sigma_mode == "tensor_std":
        sigma = p.scale * t.matrix.to(t.compute_dtype()).std()
    else:
        raise ValueError(f"unknown sigma_mode '{p.sigma_mode}' (expected abs or tensor_std)")
    return (w + sigma * t.randn()).to(t.old.dtype)


def _bit_flip(t: Touch, p: BitFlipParams) -> torch.Tensor:
    bits = resolve_bits(p.bit, t.old.dtype, t.old.numel(), t.generator)
    return flip_bits(t.old, bits.to(t.old.device))


def _keep_fraction(groups: list[Group], p: BitFlipParams, ctx: ExpandContext) -> list[Group]:
    if not 0 < p.prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {p.prob}")
    total = sum(len(g.index) for g in groups)
    if p.prob == 1 or total == 0:
        return groups
    m = max(1, int(round(p.prob * total)))
    keep = np.zeros(total, dtype=bool)
    keep[torch.randperm(total, generator=ctx.generator)[:m].numpy()] = True
    out, lo = [], 0
    for g in groups:
        k = keep[lo: lo + len(g.index)]
        lo += len(g.index)
        if k.any():
            out.append(Group(g.tensor, g.expert, g.component, g.index[k], None if g.score is None else g.score[k]))
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
    return (w + p.scale * w.abs() * rel * t.randn()).to(t.old.dtype)


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


# ----------------------------------------------------------------------------------------------------------------
# Apply and restore


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


def _raw(param: torch.Tensor) -> torch.Tensor:
    if not param.is_contiguous():
        raise ValueError("parameters must be contiguous: flat indices address their storage")
    return param.detach().view(int_view_dtype(param.dtype)).view(-1)


@dataclass
class Applied:
    """A perturbation in place. ``restore()`` puts every touched element's original bits back."""

    perturbation: str
    params: Any
    seed: int
    saved: list[Saved] = field(repr=False)
    n_touched: int
    n_changed: int  # touched elements whose bits changed
    n_nonfinite: int  # NaN/inf among the new values: the condition is diverged
    restored: bool = False

    @property
    def diverged(self) -> bool:
        return self.n_nonfinite > 0

    @property
    def tensors(self) -> list[str]:
        return sorted({s.tensor for s in self.saved})

    @property
    def saved_bytes(self) -> int:
        return sum(s.nbytes for s in self.saved)

    def restore(self, check: bool = True) -> None:
        """Write the saved bits back (last applied first); ``check`` re-reads them (O(touched))."""
        with torch.no_grad():
            for s in reversed(self.saved):
                _raw(s.param).index_copy_(0, s.index, s.old)
            if check:
                for s in self.saved:
                    if not torch.equal(_raw(s.param).index_select(0, s.index), s.old):
                        raise RestoreError(f"{s.tensor}: touched elements differ after restore")
        self.restored = True

    def summary(self) -> dict[str, Any]:
        return {"perturbation": self.perturbation, "params": asdict(self.params), "seed": self.seed,
                "n_touched": self.n_touched, "n_changed": self.n_changed, "n_nonfinite": self.n_nonfinite,
                "diverged": self.diverged, "tensors": len(self.tensors), "saved_bytes": self.saved_bytes}


def parameters(source: ParamSource) -> dict[str, torch.Tensor]:
    """Name → parameter; a model's tied parameters answer to every one of their names."""
    if isinstance(source, torch.nn.Module):
        return dict(source.named_parameters(remove_duplicate=False))
    return dict(source)


def groups_of(selection: pd.DataFrame, params: Mapping[str, torch.Tensor]) -> list[Group]:
    """The selection as per-matrix groups (matrices by tensor name, then expert), checked against the shapes.

    Within a matrix the selection's row order is kept (rank order for a top-k set).
    """
    tensor = selection["tensor"].to_numpy(dtype=object)
    missing = set(tensor.tolist()) - set(params)
    if missing:
        raise KeyError(f"selection names tensors the model lacks: {', '.join(sorted(missing)[:5])}")
    expert = selection["expert"].astype("Int64").fillna(-1).to_numpy(np.int64)
    flat_all = selection["flat_index"].to_numpy(np.int64)
    has_rc = {"row", "col"} <= set(selection.columns)
    row_all = selection["row"].to_numpy(np.int64) if has_rc else None
    col_all = selection["col"].to_numpy(np.int64) if has_rc else None
    score_all = selection["score"].to_numpy(np.float64) if "score" in selection.columns else None
    comp_all = selection["component"].to_numpy(dtype=object) if "component" in selection.columns else None
    names, tid = np.unique(tensor.astype(str), return_inverse=True)
    order = np.lexsort((expert, tid))  # stable: keeps the selection's order within a matrix
    key_t, key_e = tid[order], expert[order]
    cuts = np.flatnonzero((np.diff(key_t) != 0) | (np.diff(key_e) != 0)) + 1
    out = []
    for part in np.split(order, cuts) if len(order) else []:
        name, e = str(names[tid[part[0]]]), int(expert[part[0]])
        exp = None if e < 0 else e
        rows, cols, offset = matrix_geometry(params[name], exp)
        flat = flat_all[part]
        local = flat - offset
        if (local < 0).any() or (local >= rows * cols).any():
            raise ValueError(f"{name} (expert {exp}): flat indices outside the matrix")
        if has_rc and not (np.array_equal(local // cols, row_all[part]) and np.array_equal(local % cols,
                                                                                          col_all[part])):
            raise ValueError(f"{name} (expert {exp}): row/col disagree with flat_index for shape "
                             f"({rows}, {cols}); was the selection made on another model?")
        comp = str(comp_all[part[0]]) if comp_all is not None else component_of(name)
        out.append(Group(name, exp, comp, flat, None if score_all is None else score_all[part]))
    return out


def _score_max(groups: list[Group], per_matrix: bool) -> dict[tuple[str, int | None], float | None]:
    def top(gs: list[Group]) -> float | None:
        vals = [np.nanmax(np.abs(g.score)) for g in gs if g.score is not None and len(g.score)
                and not np.isnan(g.score).all()]
        return float(max(vals)) if vals else None
    overall = top(groups)
    return {(g.tensor, g.expert): (top([g]) if per_matrix else overall) for g in groups}


def apply(source: ParamSource, selection: pd.DataFrame, perturbation: str, params: Any = None, seed: int = 0, *,
          grad: Grad | None = None) -> Applied:
    """Perturb the selected weights in place; only their indices and old bits are kept (see ``Applied``).

    ``selection`` has columns tensor, expert, flat_index (row/col/component/score when present are used and
    checked). ``grad`` (grad_step): name → gradient of the mean calibration NLL shaped like the parameter, or a
    function returning that mapping. Draws come from a CPU generator seeded with ``seed``, matrices in name order.
    """
    entry = get_perturbation(perturbation)
    p = entry.params() if params is None else params
    if not isinstance(p, entry.params):
        raise TypeError(f"{perturbation} takes {entry.params.__name__}, got {type(p).__name__}")
    named = parameters(source)
    model = source if isinstance(source, torch.nn.Module) else None
    generator = torch.Generator().manual_seed(int(seed))
    groups = groups_of(selection, named)
    if entry.expand is not None:
        groups = entry.expand(groups, p, ExpandContext(named, model, generator))
    for g in groups:
        if len(np.unique(g.index)) != len(g.index):
            raise ValueError(f"{g.tensor}: a weight is selected twice")
    grads: Mapping[str, torch.Tensor] | None = None
    if entry.needs_grad:
        if grad is None:
            raise ValueError(f"{perturbation} needs grad= (the calibration gradient)")
        grads = grad() if callable(grad) else grad
    maxima = _score_max(groups, getattr(p, "normalize", "global") == "per_matrix")

    saved: list[Saved] = []
    n_changed, n_nonfinite, n_touched = [], [], 0
    try:
        with torch.no_grad():
            for g in groups:
                param = named[g.tensor]
                raw = _raw(param)
                index = torch.tensor(g.index, dtype=torch.int64, device=param.device)
                old_raw = raw.index_select(0, index)
                old = old_raw.view(param.dtype)
                gsel = None
                if grads is not None:
                    if g.tensor not in grads or grads[g.tensor] is None:
                        raise KeyError(f"no gradient for {g.tensor}")
                    gflat = grads[g.tensor].detach().reshape(-1)
                    gsel = gflat.index_select(0, index.to(gflat.device))
                touch = Touch(g.tensor, g.expert, matrix_view(param, g.expert), index, old,
                              None if g.score is None else torch.tensor(g.score, dtype=torch.float64),
                              maxima[(g.tensor, g.expert)], gsel, generator)
                new = entry.values(touch, p).to(param.dtype).contiguous()
                if new.shape != old.shape:
                    raise ValueError(f"{perturbation} returned shape {tuple(new.shape)} for {tuple(old.shape)}")
                new_raw = new.view(old_raw.dtype)
                raw.index_copy_(0, index, new_raw)
                saved.append(Saved(g.tensor, param, index, old_raw))
                n_touched += index.numel()
                n_changed.append((new_raw != old_raw).sum())
                n_nonfinite.append((~torch.isfinite(new)).sum())
    except BaseException:
        Applied(perturbation, p, seed, saved, 0, 0, 0).restore(check=False)  # leave the model as it was
        raise
    total = lambda xs: int(sum(int(x) for x in xs))  # noqa: E731  (one sync per matrix, after all writes)
    return Applied(perturbation, p, int(seed), saved, n_touched, total(n_changed), total(n_nonfinite))


def matrix_view(param: torch.Tensor, expert: int | None) -> torch.Tensor:
    return param.detach()[expert] if param.dim() == 3 else param.detach()


@contextmanager
def perturbed(source: ParamSource, selection: pd.DataFrame, perturbation: str, params: Any = None, seed: int = 0,
              *, grad: Grad | None = None, verify: Literal["touched", "all", "none"] = "touched",
              method: Method = "auto", reference: Checksum | None = None) -> Iterator[Applied]:
    """Apply on entry; on exit restore and prove the restore (checksum of the touched tensors by default).

    ``reference``: a checksum of the unperturbed model taken once per run (any superset of the tensors to check),
    so each condition costs one checksum, after its restore, instead of two.
    """
    names = None if verify == "all" else sorted(set(selection["tensor"]))
    before = None
    if verify != "none":
        if reference is not None:
            before = reference if names is None else reference.subset(names)
        else:
            before = checksum(source, names, method)
    applied = apply(source, selection, perturbation, params, seed, grad=grad)
    try:
        yield applied
    finally:
        applied.restore()
        if before is not None:
            verify_restored(before, source)


__all__ = ["REGISTRY", "Perturbation", "register", "get_perturbation", "params_from_spec", "Touch", "Group",
           "ZeroParams", "SignFlipParams", "ScaleParams", "GaussParams", "BitFlipParams", "GradStepParams",
           "CorrelatedParams", "AdaptiveParams", "Applied", "Saved", "RestoreError", "apply", "perturbed",
           "parameters", "groups_of", "head_dim_of", "Checksum", "checksum", "verify_restored"]
