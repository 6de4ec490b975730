"""Per-pair response NLL on held-out instruction pairs: the new domain's table, shaped like the evaluator's
per-window table (window_id, doc_id, n_tokens, nll_sum) so the paired statistics of esa.analysis.paired apply."""

from __future__ import annotations

import pandas as pd
import torch

from esa.engine.data.instruct_pairs import Pair
from esa.engine.models.instruct import IGNORE


@torch.no_grad()
def pair_table(model: torch.nn.Module, pairs: list[Pair], ids: torch.Tensor, labels: torch.Tensor,
               mask: torch.Tensor, batch_size: int) -> pd.DataFrame:
    """One row per pair: summed NLL over its response tokens (and end token), and their count."""
    if len(pairs) != len(ids):
        raise ValueError(f"{len(pairs)} pairs but {len(ids)} encoded rows")
    model.eval()
    device = next(model.parameters()).device
    sums, counts = [], []
    for i in range(0, len(ids), batch_size):
        batch = slice(i, i + batch_size)
        logits = model(input_ids=ids[batch].to(device), attention_mask=mask[batch].to(device)).logits.float()
        target = labels[batch, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=IGNORE,
                                                reduction="none")
        sums.extend(nll.sum(dim=1).tolist())
        counts.extend((target != IGNORE).sum(dim=1).tolist())
    return pd.DataFrame({"window_id": [f"{p.doc_id}::{p.function}::{j}" for j, p in enumerate(pairs)],
                         "doc_id": [p.doc_id for p in pairs], "n_tokens": counts, "nll_sum": sums})


def fitting_pairs(tokenizer, pairs: list[Pair], seq_len: int) -> list[Pair]:
    """The pairs whose chat-formatted tokens fit in ``seq_len`` (``encode_pairs`` drops the others unnamed)."""
    from esa.engine.models.instruct import encode_pair

    return [pair for pair in pairs if len(encode_pair(tokenizer, pair)[0]) <= seq_len]


__all__ = ["fitting_pairs", "pair_table"]
