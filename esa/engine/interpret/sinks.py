"""Attention-sink mass per window and layer: the share of attention on the first token, averaged over heads and
over the window's query positions ≥ 1 (real tokens only), so that windows can be resampled as units."""

from __future__ import annotations

import numpy as np
import torch

from esa.engine.interpret.attention import sink_queries
from esa.engine.interpret.forward import forward_pass


def window_sinks(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 batch_size: int = 8) -> np.ndarray:
    """[windows, layers] float64: each window's mean attention on key 0 per layer (right-padded windows)."""
    rows = []
    for lo in range(0, input_ids.shape[0], batch_size):
        chunk = input_ids[lo: lo + batch_size]
        mask = None if attention_mask is None else attention_mask[lo: lo + batch_size]
        queries = sink_queries(mask, *chunk.shape).double()  # [B, T]
        probs = forward_pass(model, chunk, mask).attentions or []
        per_layer = [((p[..., 0].double().cpu() * queries[:, None, :]).sum((1, 2))
                      / (queries.sum(1) * p.shape[1])).numpy() for p in probs]
        rows.append(np.stack(per_layer, axis=1))
    return np.concatenate(rows, axis=0)


__all__ = ["window_sinks"]
