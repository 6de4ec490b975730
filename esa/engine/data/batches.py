"""Calibration windows and microbatches: what the scoring and ablation passes feed the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from esa.engine.data.windows import WindowDraw, draw_windows, make_windows, tokenize_docs

Params = list[tuple[str, torch.nn.Parameter]]



def calibration_windows(tokenizer, docs: list[dict], *, context: int, max_windows: int,
                        seed: int, folds: int = 1, fold: int = 0) -> list[torch.Tensor]:
    """A seeded sample of windows of up to ``context`` tokens, one token-id tensor each (see ``calibration_draw``)."""
    return calibration_draw(tokenizer, docs, context=context, max_windows=max_windows, seed=seed, folds=folds,
                            fold=fold)[0]


def calibration_draw(tokenizer, docs: list[dict], *, context: int, max_windows: int, seed: int, folds: int = 1,
                     fold: int = 0) -> tuple[list[torch.Tensor], WindowDraw]:
    """The windows' token ids and the draw's record.

    Windows start every ``context - 1`` tokens, so consecutive windows share one token and every token of a
    document but its first is predicted exactly once over all windows. ``folds``/``fold``: the document-disjoint
    part of the pool this seed draws from (``esa.engine.data.windows.draw_windows``).
    """
    tokenized = tokenize_docs(tokenizer, docs)
    draw = draw_windows(tokenized, make_windows(tokenized, context, context - 1), max_windows=max_windows,
                        seed=seed, folds=folds, fold=fold)
    return [torch.tensor(tokenized[w.doc].ids[w.start: w.end], dtype=torch.long) for w in draw.windows], draw


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor  # (B, T), right-padded
    mask: torch.Tensor | None  # (B, T) 1 = real token; None when nothing is padded
    n_sequences: int
    n_positions: int  # non-padding positions
    n_tokens: int  # predicted tokens (each sequence predicts all its tokens but the first)


def make_batches(windows: list[torch.Tensor], microbatch: int = 1, pad_id: int = 0) -> list[Batch]:
    if microbatch < 1:
        raise ValueError(f"microbatch must be >= 1, got {microbatch}")
    seqs = [w.reshape(-1).long() for w in windows]
    short = [i for i, s in enumerate(seqs) if s.numel() < 2]
    if short:
        raise ValueError(f"windows {short[:5]} have fewer than 2 tokens: nothing to predict")
    batches = []
    for lo in range(0, len(seqs), microbatch):
        chunk = seqs[lo: lo + microbatch]
        width = max(s.numel() for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, s in enumerate(chunk):
            ids[row, : s.numel()] = s
            mask[row, : s.numel()] = 1
        n_pos = int(mask.sum())
        padded = n_pos < mask.numel()
        batches.append(Batch(ids, mask if padded else None, len(chunk), n_pos, n_pos - len(chunk)))
    return batches


def batch_loss(model, batch: Batch, device: torch.device) -> torch.Tensor:
    """Mean NLL (in float32, or the model's dtype when wider) over the batch's predicted tokens."""
    ids = batch.ids.to(device)
    mask = None if batch.mask is None else batch.mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    targets = ids[:, 1:]
    if mask is not None:
        targets = targets.masked_fill(mask[:, 1:] == 0, -100)
    targets = targets.to(logits.device)  # a model split over GPUs may return its logits on the last one
    logits = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))  # at least fp32
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          ignore_index=-100, reduction="sum")
    return nll / batch.n_tokens


def model_device(model) -> torch.device:
    return next(model.parameters()).device
