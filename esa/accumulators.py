"""The dtype scoring accumulators are kept in, and its default: one rule for the spec, the compiler and the stage.

Torch-free, so specs validate and compile without torch.
"""

from __future__ import annotations

ACCUM_DTYPES: tuple[str, ...] = ("float32", "bfloat16")
AUTO = "auto"

DEFAULT_RULE = ("float32, except on a CUDA device with a model stored in bfloat16 (dtype: bfloat16, or auto on a "
                "bfloat16 checkpoint), where bfloat16")


def default_accum_dtype(device: str, model_dtype: str) -> str:
    """The default accumulator dtype for a device type (cpu, cuda, auto) and a model dtype (float32, bfloat16,
    float16, auto).

    ``auto`` comes back when the rule cannot be decided before the model is loaded (``device: auto`` or ``dtype:
    auto`` where the other side leaves bfloat16 possible); the score stage then applies the rule to the device and
    dtype it gets. float32 on CPU keeps every CPU spec's scores as they were; bfloat16 on a GPU halves the largest
    memory cost of a big model's scoring (8B parameters: 30 GiB per accumulator instead of 60).
    """
    if device == "cpu" or model_dtype in ("float32", "float16"):
        return "float32"
    if device == "cuda" and model_dtype == "bfloat16":
        return "bfloat16"
    return AUTO


def resolve_accum_dtype(setting: str, device: str, model_dtype: str) -> str:
    """``setting`` (float32, bfloat16 or auto) for a known device type and the dtype the model was loaded in."""
    if setting != AUTO:
        if setting not in ACCUM_DTYPES:
            raise ValueError(f"accum_dtype must be one of {', '.join((*ACCUM_DTYPES, AUTO))}, got '{setting}'")
        return setting
    resolved = default_accum_dtype(device, model_dtype)
    if resolved == AUTO:
        raise ValueError(f"cannot decide accum_dtype for device '{device}' and dtype '{model_dtype}'")
    return resolved
