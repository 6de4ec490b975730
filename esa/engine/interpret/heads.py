"""Attention heads: what each head does (entropy, sink share) and how many critical weights it holds.

Geometry (Llama-style separate projections, nn.Linear's (out, in) layout): q_proj's output rows are the query
heads' blocks of ``head_dim`` rows, k_proj's and v_proj's are the KV heads' blocks, and o_proj's input columns are
the query heads' blocks. With grouped-query attention (``num_key_value_heads`` < ``num_attention_heads``) query
head h reads KV head h // (num_attention_heads / num_key_value_heads). Counts are reported per query head: a
k_proj/v_proj weight counts for every query head in its KV head's group (``kv_head`` says which group), so the
k and v columns summed over heads count each such weight once per query head of the group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from esa.engine.interpret.attention import HeadSums, head_sums, sink_queries
from esa.engine.interpret.forward import forward_pass
from esa.engine.models.targets import component_of, layer_of
from esa.engine.perturbation.registry import head_dim_of

PROJECTIONS = {"attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_o": "o"}


@dataclass(frozen=True)
class HeadGeometry:
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> "HeadGeometry":
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        heads = int(cfg.num_attention_heads)
        kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
        head_dim = head_dim_of(model)
        if head_dim is None:
            raise ValueError("the model's config gives no head_dim")
        return cls(int(cfg.num_hidden_layers), heads, kv, head_dim)

    @property
    def group(self) -> int:
        """Query heads per KV head."""
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.n_heads} query heads do not split into {self.n_kv_heads} KV heads")
        return self.n_heads // self.n_kv_heads


def head_attention_stats(model: torch.nn.Module, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None, *, batch_size: int = 8) -> pd.DataFrame:
    """Per layer and head, over the windows ``input_ids`` [B, T] (right-padded when masked):

    - ``entropy``: mean over the counted queries (positions ≥ 1, real tokens) of −Σ_k p log p, in nats;
    - ``sink_share``: mean attention on key 0 over the same queries;
    - ``uniform_entropy``: what ``entropy`` would be if every query spread evenly over the keys it sees (the
      mean of log(position + 1)), the ceiling to read ``entropy`` against;
    - ``n_queries``.

    Windows run ``batch_size`` at a time: all layers' probabilities of a batch are held at once.
    """
    ids = input_ids.reshape(1, -1) if input_ids.dim() == 1 else input_ids
    totals: list[HeadSums] | None = None
    for lo in range(0, ids.shape[0], batch_size):
        chunk = ids[lo: lo + batch_size]
        mask = None if attention_mask is None else attention_mask.reshape(ids.shape)[lo: lo + batch_size]
        queries = sink_queries(mask, *chunk.shape)
        probs = forward_pass(model, chunk, mask).attentions or []
        sums = [head_sums(p, queries.to(p.device), mask) for p in probs]
        totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
    rows = []
    for layer, s in enumerate(totals or []):
        n = s.n_queries or math.nan  # no counted query (one-token windows): no mean
        for head in range(s.entropy.numel()):
            rows.append({"layer": layer, "head": head, "entropy": float(s.entropy[head]) / n,
                         "sink_share": float(s.sink[head]) / n,
                         "uniform_entropy": float(s.uniform_entropy[head]) / n, "n_queries": s.n_queries})
    return pd.DataFrame(rows)


def critical_head_counts(table: pd.DataFrame, geometry: HeadGeometry) -> pd.DataFrame:
    """Critical weights per (layer, query head) in q/k/v/o, from a selection with this project's top-k columns
    (``tensor``, ``row``, ``col``; ``layer``/``component`` are derived from the name when absent).

    One row per layer and query head of the model (zeros included): ``layer``, ``head``, ``kv_head``, ``q``,
    ``k``, ``v``, ``o`` and ``total`` (their sum). Rows of non-attention components are ignored; a fused
    projection (``attn_qkv``, ``attn_kv``) is refused, since its rows are not one projection's heads.
    """
    comp = table["component"] if "component" in table.columns else table["tensor"].map(component_of)
    fused = sorted(set(comp) & {"attn_qkv", "attn_kv"})
    if fused:
        raise ValueError(f"fused attention projections ({', '.join(fused)}) are not mapped to heads")
    proj = comp.map(PROJECTIONS)
    attn = table[proj.notna()]
    proj = proj[proj.notna()]
    layer = (attn["layer"] if "layer" in attn.columns else attn["tensor"].map(layer_of)).astype("Int64")
    if layer.isna().any():
        raise ValueError("an attention weight of the table has no layer")
    # The head block: output rows for q/k/v, input columns for o.
    index = np.where(proj == "o", attn["col"], attn["row"]).astype(np.int64) // geometry.head_dim
    heads = np.where(proj.isin(["k", "v"]), geometry.n_kv_heads, geometry.n_heads)
    layers = layer.to_numpy(np.int64)
    if (index >= heads).any() or (index < 0).any() or (layers >= geometry.n_layers).any():
        raise ValueError("a row/col of the table falls outside the model's heads or layers; another model's?")
    found = pd.DataFrame({"layer": layers, "proj": proj.to_numpy(), "unit": index})
    per_unit = found.groupby(["layer", "proj", "unit"]).size() if len(found) else None
    grid = pd.DataFrame([(lay, h, h // geometry.group) for lay in range(geometry.n_layers)
                         for h in range(geometry.n_heads)], columns=["layer", "head", "kv_head"])
    for p in ("q", "k", "v", "o"):
        unit = grid["kv_head"] if p in ("k", "v") else grid["head"]
        keys = pd.MultiIndex.from_arrays([grid["layer"], [p] * len(grid), unit])
        grid[p] = 0 if per_unit is None else per_unit.reindex(keys, fill_value=0).to_numpy(np.int64)
    grid["total"] = grid[["q", "k", "v", "o"]].sum(axis=1)
    return grid


__all__ = ["HeadGeometry", "PROJECTIONS", "critical_head_counts", "head_attention_stats"]
