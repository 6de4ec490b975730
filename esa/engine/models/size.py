"""How big a model is, in the counts scaling laws use: every parameter, the non-embedding parameters (N of Kaplan et
al. 2020: the token and position embeddings and an untied output head left out) and, for a mixture of experts, the
non-embedding parameters one token passes through (the router's top-k of the routed experts)."""

from __future__ import annotations

import torch

# Config fields naming a MoE's expert count and routing width, across the families transformers ships.
EXPERT_COUNT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
ROUTED_FIELDS = ("num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k")
POSITION_MODULES = ("wpe", "embed_positions", "position_embeddings")


def _embedding_tensors(model: torch.nn.Module) -> dict[int, torch.Tensor]:
    """Input and output embeddings and learned position tables, keyed by storage so a tied head counts once."""
    found: dict[int, torch.Tensor] = {}
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            found[weight.data_ptr()] = weight
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in POSITION_MODULES and isinstance(getattr(module, "weight", None), torch.Tensor):
            found[module.weight.data_ptr()] = module.weight
    return found


def _routing(config) -> tuple[int, int] | None:
    experts = next((getattr(config, f) for f in EXPERT_COUNT_FIELDS if isinstance(getattr(config, f, None), int)), None)
    routed = next((getattr(config, f) for f in ROUTED_FIELDS if isinstance(getattr(config, f, None), int)), None)
    return (experts, routed) if experts and routed and routed < experts else None


def model_size(model: torch.nn.Module) -> dict[str, int]:
    """{"total", "non_embedding", "active_non_embedding"} parameter counts (each shared tensor counted once).

    Active: parameters under an ``.experts.`` module count routed/experts of their size (shared experts, routers and
    attention count fully); equal to non_embedding for a dense model.
    """
    seen: set[int] = set()
    total = experts = 0
    for name, param in model.named_parameters(remove_duplicate=True):
        if param.data_ptr() in seen:
            continue
        seen.add(param.data_ptr())
        total += param.numel()
        if ".experts." in f".{name}." and "shared" not in name:
            experts += param.numel()
    embedding = sum(t.numel() for t in _embedding_tensors(model).values())
    non_embedding = total - embedding
    routing = _routing(getattr(model, "config", None))
    active = non_embedding if routing is None else non_embedding - experts + experts * routing[1] // routing[0]
    return {"total": total, "non_embedding": non_embedding, "active_non_embedding": active}
