"""Perplexity, bits per byte and top-1 accuracy over sampled sliding windows of a document set."""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from esa.engine.models.loading import max_context, n_params
from esa.engine.data.windows import (TokenizedDoc, Window, WindowDraw, check_window_settings, draw_windows,
                                make_windows, tokenize_docs)

SEQUENCE_COLUMNS = ["window_id", "doc_id", "start", "n_tokens", "n_bytes", "nll_sum", "n_correct"]


def window_id(doc: TokenizedDoc, window: Window) -> str:
    # Depends only on the document and the window's position, so the same window has the same id in every seed.
    return f"{doc.doc_id}:{window.start}"


def _batch_inputs(docs: list[TokenizedDoc], windows: list[Window], pad_id: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(w.length for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        ids[row, : w.length] = torch.tensor(docs[w.doc].ids[w.start: w.end], dtype=torch.long)
        mask[row, : w.length] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def score_windows(model, docs: list[TokenizedDoc], windows: list[Window], *, batch_size: int, pad_id: int,
                  device: torch.device, progress: bool = True) -> list[tuple[float, int]]:
    """Per window: (summed NLL over its scored tokens, number of scored tokens predicted top-1 correctly)."""
    out: list[tuple[float, int]] = []
    batches = range(0, len(windows), batch_size)
    for i in tqdm(batches, desc="evaluate", disable=not progress, mininterval=2.0):
        chunk = windows[i: i + batch_size]
        ids, mask = _batch_inputs(docs, chunk, pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        # Position t predicts token t+1; NLL in float32 whatever the model's dtype.
        logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = ids[:, 1:]
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        correct = logits[:, :-1].argmax(-1) == targets
        # Scored tokens are each window's last n_scored; prediction index p scores token p + 1.
        pos = torch.arange(targets.shape[1], device=targets.device)
        hi = torch.tensor([w.length - 1 for w in chunk], device=targets.device)[:, None]
        lo = hi - torch.tensor([w.n_scored for w in chunk], device=targets.device)[:, None]
        scored = (pos >= lo) & (pos < hi)
        nll_sum = torch.where(scored, nll, torch.zeros_like(nll)).sum(-1)
        n_correct = (correct & scored).sum(-1)
        out.extend(zip(nll_sum.tolist(), n_correct.tolist()))
    return out


def check_settings(model, *, context: int, stride: int, batch_size: int) -> None:
    """Raise ValueError (one line) for settings the model or the window scheme cannot honour."""
    limit = max_context(model)
    if limit is not None and context > limit:
        raise ValueError(f"context {context} exceeds the model's max_position_embeddings {limit}")
    check_window_settings(context, stride)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


@dataclass
class EvalWindows:
    """A seeded window sample, tokenized once, so many conditions can be evaluated on exactly these windows."""

    tokenized: list
    windows: list[Window]
    n_available: int
    pad_id: int
    context: int
    stride: int
    draw: WindowDraw | None = None


def prepare_windows(tokenizer, docs: list[dict], *, context: int, stride: int, max_windows: int,
                    seed: int, folds: int = 1, fold: int = 0) -> EvalWindows:
    """Tokenize once and draw this seed's windows from its document-disjoint part ``fold`` of ``folds``."""
    check_window_settings(context, stride)
    tokenized = tokenize_docs(tokenizer, docs)
    all_windows = make_windows(tokenized, context, stride)
    if not all_windows:
        raise ValueError("no evaluation windows: the documents are empty")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    draw = draw_windows(tokenized, all_windows, max_windows=max_windows, seed=seed, folds=folds, fold=fold)
    return EvalWindows(tokenized, draw.windows, len(all_windows), pad_id, context, stride, draw)


def evaluate_windows(model, prepared: EvalWindows, *, batch_size: int, device: torch.device | str = "cpu",
                     progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Score prepared windows; return (metrics, one row per window)."""
    check_settings(model, context=prepared.context, stride=prepared.stride, batch_size=batch_size)
    tokenized, windows = prepared.tokenized, prepared.windows
    scores = score_windows(model, tokenized, windows, batch_size=batch_size, pad_id=prepared.pad_id,
                           device=torch.device(device), progress=progress)
    frame = pd.DataFrame(
        [(window_id(tokenized[w.doc], w), tokenized[w.doc].doc_id, w.start, w.n_scored, w.n_scored_bytes, nll, ok)
         for w, (nll, ok) in zip(windows, scores)],
        columns=SEQUENCE_COLUMNS,
    )
    return summarize(frame, model, prepared.n_available), frame


def evaluate(model, tokenizer, docs: list[dict], *, context: int, stride: int, max_windows: int, batch_size: int,
             seed: int, device: torch.device | str = "cpu", progress: bool = True, folds: int = 1,
             fold: int = 0) -> tuple[dict, pd.DataFrame]:
    """Score a seeded sample of sliding windows over ``docs``; return (metrics, one row per window)."""
    check_settings(model, context=context, stride=stride, batch_size=batch_size)
    prepared = prepare_windows(tokenizer, docs, context=context, stride=stride, max_windows=max_windows, seed=seed,
                               folds=folds, fold=fold)
    return evaluate_windows(model, prepared, batch_size=batch_size, device=device, progress=progress)


def summarize(frame: pd.DataFrame, model, n_available: int) -> dict:
    """Corpus-level metrics from per-window sums (token-weighted: never a mean of per-batch means)."""
    total_nll = float(frame["nll_sum"].sum())
    n_tokens = int(frame["n_tokens"].sum())
    n_bytes = int(frame["n_bytes"].sum())
    finite = bool(np.isfinite(frame["nll_sum"].to_numpy()).all())
    nll_per_token = total_nll / n_tokens if n_tokens else float("nan")
    return {
        "status": "ok" if finite else "diverged",
        "ppl": float(np.exp(nll_per_token)) if finite else float("nan"),
        "nll_per_token": nll_per_token if finite else float("nan"),
        "bits_per_byte": total_nll / math.log(2) / n_bytes if finite and n_bytes else float("nan"),
        "top1_accuracy": float(frame["n_correct"].sum()) / n_tokens if n_tokens else float("nan"),
        "n_tokens": n_tokens,
        "n_bytes": n_bytes,
        "n_windows": len(frame),
        "n_windows_available": n_available,
        "vocab_size": int(model.config.vocab_size),
        "n_params": n_params(model),
    }
