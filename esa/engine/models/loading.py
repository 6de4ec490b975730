"""Loading a causal LM and its tokenizer by hub id or local path, in a stated dtype and device."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str) -> torch.dtype | str:
    """A torch dtype from its name; ``auto`` is passed through (the checkpoint's own dtype)."""
    if name == "auto":
        return "auto"
    if name not in DTYPES:
        raise ValueError(f"unknown dtype '{name}' (expected one of {', '.join([*DTYPES, 'auto'])})")
    return DTYPES[name]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return device


def quiet_hub_progress() -> None:
    """Stage logs keep one progress bar per loop of ours, not the hub's per-file loading bars."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def load_model(id_or_path: str, dtype: str = "float32", device: str = "cpu"):
    """Return ``(model, tokenizer)`` with the model in eval mode on the resolved device."""
    model = AutoModelForCausalLM.from_pretrained(id_or_path, dtype=resolve_dtype(dtype))
    model.to(resolve_device(device))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(id_or_path)
    return model, tokenizer


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def max_context(model: torch.nn.Module) -> int | None:
    """The longest context the model's position scheme supports, when its config states one."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
