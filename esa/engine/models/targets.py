"""Which parameters are scored, and what each one is called (layer, component, expert).

A target is one weight matrix. A 3-D packed expert tensor (transformers 5 MoE: ``mlp.experts.gate_up_proj`` of
shape (E, 2I, H)) becomes E targets, one per expert slice, so that per-matrix selection treats every expert as
its own matrix. Row/col always refer to the stored layout of the (sliced) 2-D matrix; GPT-2's Conv1D stores
(in, out), so there a row is an input feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from esa.engine.models.placement import stored_value

# First match wins; patterns are matched against the full parameter name. Families: Llama/Mistral/Qwen2/Gemma,
# Mixtral/Qwen2-MoE/Qwen3-MoE/OLMoE/DeepSeek-V2/V3/GPT-OSS (routers, packed and shared experts), Phi/Phi-3,
# GPT-2/StarCoder2 (`c_attn`, `c_fc`, `c_proj`), GPT-NeoX/Pythia, Falcon/BLOOM (`query_key_value`,
# `dense_h_to_4h`, `dense_4h_to_h`), OPT (`fc1`, `fc2`), GPT-J/CodeGen (`fc_in`, `fc_out`), MPT (`Wqkv`).
_COMPONENT_PATTERNS: tuple[tuple[str, str], ...] = (
    # Embeddings and output head (OPT learns its positions in `embed_positions`).
    (r"(^|\.)(embed_tokens|wte|wpe|embed_in|word_embeddings|embed_positions)\.", "embed"),
    (r"(^|\.)(lm_head|embed_out)\.", "lm_head"),
    # Routers before the generic gate/up patterns (Mixtral/Qwen-MoE/DeepSeek `mlp.gate`, GPT-OSS `mlp.router`).
    (r"\.(mlp|block_sparse_moe|moe)\.(gate|router)(\.|$)", "router"),
    (r"\.shared_expert_gate(\.|$)", "router"),
    (r"(^|\.)router\.", "router"),
    # Fused projections before their parts.
    (r"\.gate_up_proj(\.|$)", "mlp_gate_up"),
    (r"\.(query_key_value|qkv_proj|c_attn|Wqkv)(\.|$)", "attn_qkv"),
    # DeepSeek's multi-head latent attention: low-rank query factors, and the joint key/value projections.
    (r"\.(q_proj|q_a_proj|q_b_proj)(\.|$)", "attn_q"),
    (r"\.(kv_a_proj_with_mqa|kv_b_proj)(\.|$)", "attn_kv"),
    (r"\.k_proj(\.|$)", "attn_k"),
    (r"\.v_proj(\.|$)", "attn_v"),
    (r"\.(o_proj|out_proj)(\.|$)", "attn_o"),
    (r"\.(attention|attn|self_attn|self_attention)\.(dense|c_proj)(\.|$)", "attn_o"),
    (r"\.(gate_proj|w1)(\.|$)", "mlp_gate"),
    (r"\.(up_proj|w3|dense_h_to_4h|c_fc|fc1|fc_in)(\.|$)", "mlp_up"),
    (r"\.(down_proj|w2|dense_4h_to_h|fc2|fc_out)(\.|$)", "mlp_down"),
    (r"\.mlp\.c_proj(\.|$)", "mlp_down"),
)
_COMPILED = tuple((re.compile(p), c) for p, c in _COMPONENT_PATTERNS)
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
# Older MoE layouts keep one 2-D module per expert (`block_sparse_moe.experts.3.w1.weight`).
_EXPERT = re.compile(r"\.experts\.(\d+)\.")
# Names that are never weights even when ≥2-D (e.g. GPT-OSS packs expert biases as (E, out)).
_NOT_WEIGHT = re.compile(r"(^|\.|_)bias$")


def component_of(name: str) -> str:
    """Component label of a parameter name; ``other`` when no pattern matches."""
    for pattern, component in _COMPILED:
        if pattern.search(name):
            return component
    return "other"


def layer_of(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


@dataclass(eq=False)
class Target:
    """One scored weight matrix: a 2-D parameter, or one expert's slice of a 3-D parameter."""

    name: str
    parameter: torch.nn.Parameter = field(repr=False)
    layer: int | None
    component: str
    expert: int | None
    shape: tuple[int, int]
    aliases: tuple[str, ...] = ()  # other names of a tied parameter (e.g. lm_head tied to embeddings)
    packed: bool = False  # True when this is slice ``expert`` of a 3-D parameter

    @property
    def key(self) -> str:
        """Unique label: the parameter name, with ``[e]`` for an expert slice."""
        return f"{self.name}[{self.expert}]" if self.packed else self.name

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def flat_offset(self) -> int:
        """Offset of this slice in the flattened parameter: slice flat index + offset = parameter flat index."""
        return self.expert * self.numel if self.packed else 0

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        """The 2-D slice of a tensor shaped like the parameter (a score, a gradient); a view, no copy.

        A tensor already shaped like the slice is returned as is.
        """
        if tuple(tensor.shape) == self.shape:
            return tensor
        if tuple(tensor.shape) != tuple(self.parameter.shape):
            raise ValueError(f"{self.key}: tensor shape {tuple(tensor.shape)} matches neither the parameter "
                             f"{tuple(self.parameter.shape)} nor the slice {self.shape}")
        return tensor[self.expert] if self.packed else tensor

    def weight(self) -> torch.Tensor:
        """The (detached) 2-D weight this target scores (accelerate's stored copy when offloaded)."""
        return self.view(stored_value(self.parameter))


def scored_parameters(model: torch.nn.Module, *, include_embeddings: bool = False, include_lm_head: bool = False,
                      components: list[str] | None = None) -> list[Target]:
    """All ≥2-D weights of ``model`` as targets (norms and biases excluded), in ``named_parameters`` order.

    ``components`` keeps only the listed component labels (after the embedding/lm_head switches). A tied
    parameter (lm_head sharing the embedding matrix) is listed once under its first name; it counts as both
    embedding and lm_head, so either switch includes it. Parameters with more than 3 dimensions are skipped.
    """
    names_by_id: dict[int, list[str]] = {}
    params: dict[int, torch.nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_by_id.setdefault(id(param), []).append(name)
        params[id(param)] = param
    wanted = set(components) if components is not None else None
    targets: list[Target] = []
    for pid, names in names_by_id.items():
        param = params[pid]
        name = names[0]
        if param.dim() not in (2, 3) or _NOT_WEIGHT.search(name):
            continue
        kinds = {component_of(n) for n in names}
        component = component_of(name)
        if kinds & {"embed", "lm_head"}:
            tied_ok = ("embed" in kinds and include_embeddings) or ("lm_head" in kinds and include_lm_head)
            if not tied_ok:
                continue
        if wanted is not None and component not in wanted and not (kinds & wanted):
            continue
        layer = layer_of(name)
        if param.dim() == 2:
            match = _EXPERT.search(name)
            expert = int(match.group(1)) if match else None
            # A per-expert module is a whole parameter: its flat indices need no offset.
            targets.append(Target(name, param, layer, component, expert, (param.shape[0], param.shape[1]),
                                  tuple(names[1:]), packed=False))
        else:
            for e in range(param.shape[0]):
                targets.append(Target(name, param, layer, component, e, (param.shape[1], param.shape[2]),
                                      tuple(names[1:]), packed=True))
    return targets


def unnamed_components(targets: list[Target], *, examples: int = 5) -> dict | None:
    """The scored matrices whose component no pattern names (``other``), or None when every one is named.

    ``share`` is their fraction of the scored weights: hotspot grading by component lumps them into one cell,
    so a large share means the per-component view says little about this model.
    """
    unnamed = [t for t in targets if t.component == "other"]
    if not unnamed:
        return None
    names = list(dict.fromkeys(t.name for t in unnamed))  # an expert-sliced parameter is one name
    total = sum(t.numel for t in targets)
    n_weights = sum(t.numel for t in unnamed)
    return {"n_tensors": len(names), "n_weights": n_weights, "share": n_weights / total if total else 0.0,
            "examples": names[:examples]}


def unnamed_warning(unnamed: dict) -> str:
    """One line for a stage's log: how many, their share of the scored weights, a few names."""
    more = unnamed["n_tensors"] - len(unnamed["examples"])
    listed = ", ".join(unnamed["examples"]) + (f" and {more} more" if more > 0 else "")
    n = unnamed["n_tensors"]
    return (f"warning: {n} scored {'matrix' if n == 1 else 'matrices'} ({100 * unnamed['share']:.3g}% of scored "
            f"weights) {'has' if n == 1 else 'have'} no component name and {'is' if n == 1 else 'are'} grouped as "
            f"'other': {listed}")


__all__ = ["Target", "scored_parameters", "component_of", "layer_of", "unnamed_components", "unnamed_warning"]
