"""A model's MLP down projections, and what flows through each on one forward pass.

A down projection maps the MLP's wide hidden state (its input channels) back onto the residual stream (its
output channels): Llama's ``mlp.down_proj``, GPT-NeoX/Falcon/BLOOM's ``mlp.dense_4h_to_h``, GPT-2's
``mlp.c_proj``, OPT/Phi's ``fc2``, every routed expert's slice of a packed ``experts.down_proj`` and a shared
expert's ``down_proj``. They are the parameters whose component is ``mlp_down``.

The stored layout differs: nn.Linear and packed experts keep (out, in) per matrix, GPT-2's Conv1D and transposed
packed experts (GPT-OSS) keep (in, out). ``DownProjection.stored`` turns (output channel, input channel) into
the stored (row, col) that selection, scores and perturbations use.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

from esa.engine.models.targets import component_of, layer_of

_EXPERT = "experts."  # older MoE layouts keep one module per expert: `experts.3.w2.weight`


def is_conv1d(module: torch.nn.Module) -> bool:
    """GPT-2's transformers ``Conv1D``: a linear layer whose weight is stored (in, out)."""
    return type(module).__name__ == "Conv1D"


@dataclass(frozen=True)
class DownProjection:
    layer: int
    module: str  # the module holding the weight (the experts container for packed experts)
    param_name: str
    parameter: torch.nn.Parameter = field(repr=False, compare=False)
    expert: int | None  # routed expert (a slice of a packed 3-D parameter, or a per-expert module)
    packed: bool  # the weight is slice ``expert`` of a 3-D parameter
    transposed: bool  # stored (in, out) rather than nn.Linear's (out, in)

    @property
    def key(self) -> str:
        return f"{self.param_name}[{self.expert}]" if self.packed else self.param_name

    def weight(self) -> torch.Tensor:
        """The stored 2-D weight (detached)."""
        w = self.parameter.detach()
        return w[self.expert] if self.packed else w

    @property
    def in_features(self) -> int:
        return self.weight().shape[0 if self.transposed else 1]

    @property
    def out_features(self) -> int:
        return self.weight().shape[1 if self.transposed else 0]

    def stored(self, output_channel: int, input_channel: int) -> tuple[int, int]:
        """Stored (row, col) of the weight from input channel to output channel."""
        return (input_channel, output_channel) if self.transposed else (output_channel, input_channel)


def _expert_of(name: str) -> int | None:
    _, sep, tail = name.partition(_EXPERT)
    index = tail.split(".", 1)[0] if sep else ""
    return int(index) if index.isdigit() else None


def down_projections(model: torch.nn.Module) -> list[DownProjection]:
    """Every MLP down projection of ``model`` inside a numbered layer, in layer order (then model order).

    Dense ones must be nn.Linear (or a subclass) or Conv1D; packed experts are 3-D parameters of an experts
    module, transposed when that module says so (transformers' ``is_transposed``).
    """
    found = []
    for name, param in model.named_parameters():
        if param.dim() not in (2, 3) or name.endswith("bias") or component_of(name) != "mlp_down":
            continue
        layer = layer_of(name)
        if layer is None:
            continue
        module_name = name.rsplit(".", 1)[0]
        owner = model.get_submodule(module_name)
        if param.dim() == 2:
            conv = is_conv1d(owner)
            if not (conv or isinstance(owner, torch.nn.Linear)) or owner.weight is not param:
                continue
            found.append(DownProjection(layer, module_name, name, param, _expert_of(name), False, conv))
        else:
            transposed = bool(getattr(owner, "is_transposed", False))
            found += [DownProjection(layer, module_name, name, param, e, True, transposed)
                      for e in range(param.shape[0])]
    return sorted(found, key=lambda p: p.layer)


def _copies(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, channels) copies: the model may add into the output in place later (Falcon's
    ``mlp_output += attention_output``)."""
    return x.detach().reshape(-1, x.shape[-1]).clone(), y.detach().reshape(-1, y.shape[-1]).clone()


class _PackedCapture(TorchFunctionMode):
    """Catches each linear/matmul whose weight is one expert's slice of a watched packed parameter.

    Experts run in a loop of ``F.linear(x, W[e])`` (or ``x @ W[e]`` when transposed) in transformers' eager
    experts implementation, so the slice's storage offset says which expert it is.
    """

    _CALLS = {torch.nn.functional.linear: "linear", torch.matmul: "matmul", torch.Tensor.__matmul__: "matmul",
              torch.Tensor.matmul: "matmul"}

    def __init__(self, packed: list[DownProjection]):
        super().__init__()
        self.by_storage: dict[int, list[DownProjection]] = {}
        for proj in packed:
            self.by_storage.setdefault(proj.parameter.untyped_storage().data_ptr(), []).append(proj)
        self.captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _match(self, w) -> DownProjection | None:
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            return None
        projs = self.by_storage.get(w.untyped_storage().data_ptr())
        if not projs:
            return None
        p = projs[0].parameter
        if tuple(w.shape) != tuple(p.shape[1:]) or tuple(w.stride()) != tuple(p.stride()[1:]):
            return None  # not a plain expert slice (a transposed view would mislabel channels)
        expert, rest = divmod(w.storage_offset() - p.storage_offset(), p.stride(0))
        return projs[expert] if rest == 0 and 0 <= expert < len(projs) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        call = self._CALLS.get(func)
        if call is not None:
            proj = self._match(args[1] if len(args) > 1 else kwargs.get("weight", kwargs.get("other")))
            # F.linear(x, W) reads W as (out, in), x @ W as (in, out): only the stored orientation is a match.
            if proj is not None and (call == "matmul") == proj.transposed:
                self.captured[proj.key] = _copies(args[0], out)
        return out


@contextmanager
def _eager_experts(model: torch.nn.Module):
    """Run packed experts with transformers' eager loop (one matmul per expert) instead of grouped kernels."""
    getter = getattr(model, "get_experts_implementation", None)
    setter = getattr(model, "set_experts_implementation", None)
    before = getter() if getter and setter else None
    if before is not None:
        setter("eager")
    try:
        yield
    finally:
        if before is not None:
            setter(before)


@torch.no_grad()
def capture(model: torch.nn.Module, projections: list[DownProjection], input_ids: torch.Tensor
            ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """key → (input (tokens, in_features), output (tokens, out_features)) of each projection on one forward pass.

    A routed expert that received no token of ``input_ids`` is absent.
    """
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def make_hook(key: str):
        def hook(module, inputs, output):
            captured[key] = _copies(inputs[0], output)
        return hook

    dense = [p for p in projections if not p.packed]
    packed = [p for p in projections if p.packed]
    handles = [model.get_submodule(p.module).register_forward_hook(make_hook(p.key)) for p in dense]
    mode = _PackedCapture(packed)
    was_training = model.training
    model.eval()
    try:
        with ExitStack() as stack:
            if packed:
                stack.enter_context(_eager_experts(model))
                stack.enter_context(mode)
            model(input_ids=input_ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    captured.update(mode.captured)
    for p in projections:
        if p.key in captured:
            x, y = captured[p.key]
            if (x.shape[-1], y.shape[-1]) != (p.in_features, p.out_features):
                raise RuntimeError(f"{p.key}: saw (in {x.shape[-1]}, out {y.shape[-1]}) through a weight stored "
                                   f"{tuple(p.weight().shape)}, transposed={p.transposed}")
    return captured


__all__ = ["DownProjection", "down_projections", "capture", "is_conv1d"]
