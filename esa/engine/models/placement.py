"""Models larger than one device: accelerate's dispatch (``device_map`` / ``max_memory``), and what scoring needs
from it.

accelerate keeps an offloaded module's weights (those ``max_memory`` sends to "cpu" beside a GPU, or to "disk") in
a weights map and leaves ``meta`` parameters in the module; a hook puts the real weight in place for each forward
and takes it away afterwards. So an offloaded weight's value is read from that map (``stored_value``), and its
gradient reaches the weight object its forward used, not the ``meta`` one the model lists
(``watch_materialised``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import torch

# Set on an offloaded (meta) parameter object: (module, attribute) whose weights map has the value. An attribute
# of the object, not a table by id, so it lives exactly as long as the object a target holds.
OFFLOAD_ATTR = "_esa_offloaded_in"


def dispatch_settings(device_map: Any, max_memory: dict | None) -> dict[str, Any]:
    """from_pretrained's keyword arguments for a split load: the map, the budgets and a folder for "disk"."""
    if device_map is None:
        if max_memory:
            raise ValueError("max_memory needs a device_map (e.g. device_map: auto)")
        return {}
    folder = tempfile.mkdtemp(prefix="esa-offload-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    settings: dict[str, Any] = {"device_map": device_map, "offload_folder": folder}
    if max_memory:
        # YAML keys are strings; accelerate names GPUs by integer index.
        settings["max_memory"] = {int(k) if str(k).isdigit() else k: v for k, v in max_memory.items()}
    return settings


def placed_map(model: torch.nn.Module) -> dict[str, str]:
    """Where accelerate put each module (for the manifest): module name -> device, "cpu" or "disk"; ``{"": device}``
    when everything fitted on one device (transformers then records no map)."""
    placed = getattr(model, "hf_device_map", None) or {"": next(model.parameters()).device}
    return {name: str(where) for name, where in placed.items()}


def _offload_hook(module: torch.nn.Module):
    """The accelerate hook that swaps ``module``'s own weights in and out, or None."""
    hook = getattr(module, "_hf_hook", None)
    for candidate in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        if getattr(candidate, "offload", False) and getattr(candidate, "weights_map", None) is not None:
            return candidate
    return None


def register_offloaded(model: torch.nn.Module) -> None:
    """Mark every parameter accelerate keeps off its module with (module, attribute), for offload_entry."""
    for module in model.modules():
        if _offload_hook(module) is None:
            continue
        for attr, param in module.named_parameters(recurse=False):
            if param.device.type == "meta":
                setattr(param, OFFLOAD_ATTR, (module, attr))


def offload_entry(param: torch.Tensor) -> tuple[torch.nn.Module, str] | None:
    """(module, attribute) of an offloaded parameter registered by register_offloaded, else None."""
    return getattr(param, OFFLOAD_ATTR, None)


def stored_value(param: torch.Tensor) -> torch.Tensor:
    """The weight's value (detached): the parameter itself, or, when offloaded, accelerate's stored copy."""
    entry = offload_entry(param)
    if entry is None:
        return param.detach()
    module, attr = entry
    return _offload_hook(module).weights_map[attr]


def home_device(param: torch.Tensor) -> torch.device:
    """Where state kept per weight (accumulators) lives: the parameter's device, the host for offloaded ones."""
    return torch.device("cpu") if param.device.type == "meta" else param.device


def input_device(model: torch.nn.Module) -> torch.device:
    """Where a dispatched model takes its inputs: the device of its first placed module (accelerate moves them on)."""
    placed = getattr(model, "hf_device_map", None)
    if not placed:
        return next(model.parameters()).device
    first = next(iter(placed.values()))
    if first in ("cpu", "disk", "meta"):
        return torch.device("cpu")
    return torch.device(f"cuda:{first}" if isinstance(first, int) else first)


def _materialised_hook(attr: str, on_weight: Callable[[torch.nn.Parameter], None]):
    """An accelerate hook run after accelerate's own pre-forward: the weight in place then is the object autograd
    will credit. (accelerate is imported here, not by every user of this module.)"""
    from accelerate.hooks import ModelHook

    class Materialised(ModelHook):
        def pre_forward(self, module, *args, **kwargs):
            on_weight(module._parameters[attr])
            return args, kwargs

    return Materialised()


class watch_materialised:
    """Context: call ``on_weight(name, weight)`` with each offloaded weight as its module's forward puts it in place.

    The hook is appended to the module's accelerate hook chain and the chain is restored on exit.
    """

    def __init__(self, offloaded: dict[str, tuple[torch.nn.Module, str]],
                 on_weight: Callable[[str, torch.nn.Parameter], None]):
        self.offloaded, self.on_weight = offloaded, on_weight
        self.saved: list[tuple[torch.nn.Module, Any]] = []

    def __enter__(self):
        from accelerate.hooks import SequentialHook

        for name, (module, attr) in self.offloaded.items():
            hook = _materialised_hook(attr, lambda weight, name=name: self.on_weight(name, weight))
            self.saved.append((module, module._hf_hook))
            module._hf_hook = SequentialHook(module._hf_hook, hook)
        return self

    def __exit__(self, *exc):
        for module, hook in reversed(self.saved):
            module._hf_hook = hook
        self.saved.clear()
        return False
