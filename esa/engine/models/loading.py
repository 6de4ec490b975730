"""Loading a causal LM and its tokenizer by hub id or local path, in a stated dtype and device, and what a stage's
manifest records about the load."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from esa.engine.models.placement import dispatch_settings, placed_map, register_offloaded

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


class RemoteCodeRefused(ValueError):
    """The checkpoint needs code of its own and the spec did not opt in to running it."""


def load_model(id_or_path: str, dtype: str = "float32", device: str = "cpu", *, revision: str | None = None,
               trust_remote_code: bool = False, device_map=None, max_memory: dict | None = None):
    """Return ``(model, tokenizer)`` with the model in eval mode on the resolved device.

    ``revision`` (hub ids) is passed to both from_pretrained calls; ``trust_remote_code`` is always passed as a
    bool, since None would make transformers ask on the terminal before refusing. With ``device_map`` accelerate
    places the modules instead (``max_memory`` caps each device; what does not fit is offloaded to disk).
    """
    settings = {"revision": revision, "trust_remote_code": bool(trust_remote_code)}
    placement = dispatch_settings(device_map, max_memory)
    try:
        model = AutoModelForCausalLM.from_pretrained(id_or_path, dtype=resolve_dtype(dtype), **settings, **placement)
        tokenizer = AutoTokenizer.from_pretrained(id_or_path, **settings)
    except ValueError as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise RemoteCodeRefused(f"model '{id_or_path}' runs code of its own (auto_map in its config): set "
                                    f"`trust_remote_code: true` in the spec to allow it") from None
        raise
    if placement:
        register_offloaded(model)  # before any forward: targets then hold the objects that know their weights map
    else:
        model.to(resolve_device(device))
    model.eval()
    return model, tokenizer


# A hub cache keeps each commit's files in snapshots/<commit hash>/.
SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})/")


@dataclass
class StageModel:
    model: Any
    tokenizer: Any
    record: dict[str, Any]  # for the manifest: load_seconds, revision, trust_remote_code


def load_stage_model(params: dict[str, Any], device: str | None = None) -> StageModel:
    """Load ``params["model"]`` with the run's dtype, device, revision and remote-code setting, timed."""
    location = str(params["model"])
    trusted = bool(params.get("trust_remote_code", False))
    start = time.perf_counter()
    model, tokenizer = load_model(location, dtype=params.get("dtype", "float32"),
                                  device=device or params.get("device", "cpu"), revision=params.get("revision"),
                                  trust_remote_code=trusted, device_map=params.get("device_map"),
                                  max_memory=params.get("max_memory"))
    seconds = time.perf_counter() - start
    record = {"load_seconds": round(seconds, 3),
              **({"device_map": placed_map(model)} if params.get("device_map") is not None else {}),
              "revision": resolved_revision(location, params.get("revision")),
              "trust_remote_code": trusted}
    return StageModel(model, tokenizer, record)


def resolved_revision(location: str, revision: str | None = None) -> str | None:
    """The hub commit the weights came from, found offline: the snapshot folder of the hub cache that from_pretrained
    read (``revision`` or main mapped to a commit by the cache's refs), or that a local folder is. None for other
    folders."""
    path = location if os.path.isdir(location) else cached_config(location, revision)
    # abspath, not resolve(): a cache snapshot's files are links into its blobs/ folder.
    match = SNAPSHOT.search(Path(os.path.abspath(os.path.expanduser(path))).as_posix() + "/") if path else None
    return match.group(1) if match else None


def cached_config(repo_id: str, revision: str | None) -> str | None:
    """Where the hub cache keeps ``repo_id``'s config.json at ``revision`` (no network: the cache's own refs)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except ValueError:  # not a repo id the hub accepts
        return None
    return found if isinstance(found, str) else None


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
