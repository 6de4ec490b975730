"""Per-head summaries of attention probabilities: entropy and the share of attention on the first token.

A query at position 0 sees only key 0, so its entropy is 0 and its sink share is 1 whatever the head does: every
average here is over query positions ≥ 1 (and, with an attention mask, over real tokens only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def sink_queries(attention_mask: torch.Tensor | None, batch: int, length: int,
                 device: torch.device | None = None) -> torch.Tensor:
    """[B, T] bool: the queries the averages count (position ≥ 1, a real token).

    Windows must be right-padded: with left padding key 0 would be a pad, not the first token.
    """
    queries = torch.ones(batch, length, dtype=torch.bool, device=device)
    queries[:, 0] = False
    if attention_mask is None:
        return queries
    mask = attention_mask.reshape(batch, length).to(device=device, dtype=torch.bool)
    if not bool(mask[:, 0].all()):
        raise ValueError("attention_mask must keep the first token of every window (pad on the right)")
    return queries & mask


@dataclass
class HeadSums:
    """Per-head sums over the counted queries; divide by ``n_queries`` for the means."""

    entropy: torch.Tensor  # [H] float64, Σ over queries of −Σ_k p log p (nats)
    sink: torch.Tensor  # [H] Σ over queries of p(key 0)
    uniform_entropy: torch.Tensor  # [H] Σ over queries of log(number of keys the query sees)
    n_queries: int

    def __add__(self, other: "HeadSums") -> "HeadSums":
        return HeadSums(self.entropy + other.entropy, self.sink + other.sink,
                        self.uniform_entropy + other.uniform_entropy, self.n_queries + other.n_queries)


def head_sums(probs: torch.Tensor, queries: torch.Tensor, attention_mask: torch.Tensor | None = None) -> HeadSums:
    """Sums for one layer's probabilities [B, H, T, T] over the queries ``queries`` [B, T] (``sink_queries``)."""
    probs = probs.double()
    q = queries.to(probs.device, torch.double)[:, None, :]  # [B, 1, T]
    entropy = -torch.special.xlogy(probs, probs).sum(-1)  # 0 log 0 = 0: a masked key adds nothing
    b, _, t, _ = probs.shape
    keys = torch.ones(b, t, dtype=torch.double, device=probs.device) if attention_mask is None else \
        attention_mask.reshape(b, t).to(probs.device, torch.double)
    seen = keys.cumsum(-1).clamp(min=1)  # keys visible to each causal query
    return HeadSums((entropy * q).sum((0, 2)).cpu(), (probs[..., 0] * q).sum((0, 2)).cpu(),
                    (torch.log(seen)[:, None, :] * q).sum((0, 2)).expand(probs.shape[1]).cpu(),
                    int(queries.sum()))


def sink_share(probs: torch.Tensor, attention_mask: torch.Tensor | None = None) -> float:
    """Mean attention on key 0 over heads and over queries ≥ 1 of one layer's probabilities [B, H, T, T]."""
    b, _, t, _ = probs.shape
    queries = sink_queries(attention_mask, b, t, probs.device)
    sums = head_sums(probs, queries, attention_mask)
    return float(sums.sink.sum()) / (sums.n_queries * probs.shape[1]) if sums.n_queries else float("nan")


__all__ = ["HeadSums", "head_sums", "sink_queries", "sink_share"]
