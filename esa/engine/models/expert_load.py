"""How often a mixture of experts routes tokens to each expert: the load a router puts on its experts, measured on
the windows a score run draws, so that an expert's share of the sensitivity can be set against its share of the
traffic (esa.analysis.expert_load).

Routers are the modules the component rules name ``router`` (esa.engine.models.targets). A router that returns the
chosen expert indices (transformers 5 MoE routers: logits, weights, indices) is read directly; one that returns
only logits is read through its top-k, with k from the config's routing width.
"""

from __future__ import annotations

import torch

from esa.engine.models.size import ROUTED_FIELDS
from esa.engine.models.targets import component_of, layer_of


def routers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every router whose weight the component rules call ``router``, in model order."""
    found = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and component_of(f"{name}.weight") == "router":
            found.append((name, module))
    return found


def _chosen(output, k: int | None) -> torch.Tensor | None:
    """The expert indices a router's output names (tokens × k), or None when it says nothing usable."""
    if isinstance(output, tuple):
        integer = [t for t in output if isinstance(t, torch.Tensor) and not t.is_floating_point()]
        if integer:
            return integer[-1]
        output = output[0]
    if isinstance(output, torch.Tensor) and output.is_floating_point() and k:
        return torch.topk(output.reshape(-1, output.shape[-1]), k, dim=-1).indices
    return None


@torch.no_grad()
def expert_utilisation(model: torch.nn.Module, windows: list[torch.Tensor], *,
                       device: torch.device | str = "cpu") -> dict | None:
    """{"layers": {layer: [share of routed slots per expert]}, "tokens": n} over ``windows`` (one forward each,
    no padding); None for a model without routers."""
    found = routers(model)
    if not found:
        return None
    config = getattr(model, "config", None)
    k = next((getattr(config, f) for f in ROUTED_FIELDS if isinstance(getattr(config, f, None), int)), None)
    counts: dict[int, torch.Tensor] = {}
    hooks = []
    for name, module in found:
        layer, n_experts = layer_of(f"{name}.weight"), module.weight.shape[0]

        def count(_module, _inputs, output, layer=layer, n_experts=n_experts):
            chosen = _chosen(output, k)
            if chosen is not None:
                hist = torch.bincount(chosen.reshape(-1).cpu(), minlength=n_experts)
                counts[layer] = counts.get(layer, torch.zeros(n_experts, dtype=torch.long)) + hist[:n_experts]

        hooks.append(module.register_forward_hook(count))
    was_training = model.training
    model.eval()
    tokens = 0
    try:
        for window in windows:
            model(input_ids=window.unsqueeze(0).to(device))
            tokens += int(window.numel())
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {"tokens": tokens,
            "layers": {int(layer): (c.double() / c.sum()).tolist() for layer, c in sorted(counts.items()) if c.sum()}}
