"""Small constructed score tables for the architecture tests: tensor_stats rows of dense and MoE models, and
per-matrix top-k selections."""

from __future__ import annotations

import pandas as pd


def stats_row(tensor, layer, component, count, mean, expert=None, n_nonfinite=0, metric="grad_x_weight"):
    return {"metric": metric, "tensor": tensor, "layer": layer, "component": component, "expert": expert,
            "count": count, "n_nonfinite": n_nonfinite, "mean": mean}


def dense_stats(attn_mean=1.0, mlp_mean=1.0, layers=2) -> pd.DataFrame:
    """Per layer one attention matrix (100 entries) and one MLP matrix (300), plus an embedding (100)."""
    rows = [stats_row("model.embed_tokens.weight", None, "embed", 100, 1.0)]
    for layer in range(layers):
        rows += [stats_row(f"model.layers.{layer}.self_attn.q_proj.weight", layer, "attn_q", 100, attn_mean),
                 stats_row(f"model.layers.{layer}.mlp.up_proj.weight", layer, "mlp_up", 300, mlp_mean)]
    return pd.DataFrame(rows)


def moe_stats(expert_means=(1.0, 1.0, 2.0, 4.0), router_mean=10.0) -> pd.DataFrame:
    """One layer: attention (100), router (40) and 4 experts of 200 entries each."""
    rows = [stats_row("model.layers.0.self_attn.q_proj.weight", 0, "attn_q", 100, 1.0),
            stats_row("model.layers.0.block_sparse_moe.gate.weight", 0, "router", 40, router_mean)]
    rows += [stats_row(f"model.layers.0.block_sparse_moe.experts.{e}.w1.weight", 0, "mlp_gate", 200, m, expert=e)
             for e, m in enumerate(expert_means)]
    return pd.DataFrame(rows)


EMPTY_TOPK = pd.DataFrame(columns=["metric", "mode", "tensor", "layer", "component", "expert", "row", "col",
                                   "flat_index", "score", "rank"])


def seeds_of(*stats):
    return {f"s{i}": (frame, EMPTY_TOPK) for i, frame in enumerate(stats)}


def shift_tables(n=50, k=5, matrices=("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"),
                 components=("attn_q", "mlp_up")):
    stats = pd.DataFrame([stats_row(t, 0, c, n, 1.0) for t, c in zip(matrices, components)])

    def topk(indices_by_matrix):
        rows = [{"metric": "grad_x_weight", "mode": "per_layer", "tensor": t, "layer": 0, "component": c,
                 "expert": None, "row": 0, "col": int(i), "flat_index": int(i), "score": 1.0, "rank": r}
                for (t, c), indices in zip(zip(matrices, components), indices_by_matrix)
                for r, i in enumerate(indices)]
        return pd.DataFrame(rows)
    return stats, topk
