"""The shifted domain: instruction pairs split into document-disjoint parts, and the batch losses ``adapt`` takes.

Seed i trains on part i, so seeds draw disjoint data and no document feeds two of them. A document's part is a
pure function of the set of document ids: the ids are ordered by their sha256 digest and dealt round-robin, so
parts differ in size by at most one document, and the order the pairs arrive in does not matter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from esa.engine.adaptation.training import LossFn
from esa.engine.data.instruct_pairs import Pair


def _digest(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode()).hexdigest()


def doc_parts(doc_ids: Sequence[str], n_parts: int) -> dict[str, int]:
    """Document id → part in [0, n_parts), from the distinct ids; every part gets at least one document."""
    if isinstance(n_parts, bool) or not isinstance(n_parts, int) or n_parts < 1:
        raise ValueError(f"n_parts must be a positive integer, got {n_parts!r}")
    ids = sorted(set(doc_ids), key=lambda d: (_digest(d), d))
    if len(ids) < n_parts:
        raise ValueError(f"{len(ids)} documents cannot fill {n_parts} document-disjoint parts")
    return {doc_id: i % n_parts for i, doc_id in enumerate(ids)}


def domain_parts(pairs: Sequence[Pair], n_parts: int) -> list[list[Pair]]:
    """The pairs in ``n_parts`` document-disjoint parts covering them all; each keeps the pairs' order."""
    part_of = doc_parts([p.doc_id for p in pairs], n_parts)
    parts: list[list[Pair]] = [[] for _ in range(n_parts)]
    for pair in pairs:
        parts[part_of[pair.doc_id]].append(pair)
    return parts


def domain_split(pairs: Sequence[Pair], n_parts: int, part: int) -> list[Pair]:
    """Part ``part`` (e.g. the seed index) of ``domain_parts(pairs, n_parts)``."""
    if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < n_parts:
        raise ValueError(f"part must be an integer in [0, {n_parts}), got {part!r}")
    return domain_parts(pairs, n_parts)[part]


def _device(model: torch.nn.Module) -> torch.device:
    # Batches follow the model, so the data may stay on the CPU while the model trains on an accelerator.
    return next(model.parameters()).device


def pair_loss(ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> LossFn:
    """Batch loss over encoded pairs (``encode_pairs``): mean NLL per response token, as ``instruct.finetune``."""
    if not ids.shape == labels.shape == mask.shape:
        raise ValueError(f"ids, labels and mask must share a shape, got {tuple(ids.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(mask.shape)}")

    def loss_of(model: torch.nn.Module, idx: list[int]) -> torch.Tensor:
        device = _device(model)
        return model(input_ids=ids[idx].to(device), attention_mask=mask[idx].to(device),
                     labels=labels[idx].to(device)).loss

    return loss_of


def text_loss(chunks: torch.Tensor) -> LossFn:
    """Batch loss over packed text chunks (``pack_tokens``): mean next-token NLL, as the reference training."""
    if chunks.dim() != 2:
        raise ValueError(f"chunks must be [n_chunks, seq_len], got shape {tuple(chunks.shape)}")

    def loss_of(model: torch.nn.Module, idx: list[int]) -> torch.Tensor:
        batch = chunks[idx].to(_device(model))
        return model(input_ids=batch, labels=batch).loss

    return loss_of


def shifted_domain(tokenizer, corpus_dir: Path, seed_plan: Sequence[int], seed: int, *, seq_len: int,
                   max_pairs: int = 0, heldout_pairs: int = 128) -> tuple[list[Pair], list[Pair]]:
    """(this seed's training pairs, the held-out pairs), each keeping only pairs that fit in ``seq_len``.

    Training pairs come from the corpus's train split, part ``seed_plan.index(seed)`` of ``len(seed_plan)``
    document-disjoint parts; held-out pairs are the first ``heldout_pairs`` of the evaluation split's, the same
    for every seed. A tokenizer without a chat template gets the embedded instruct model's.
    """
    from esa.engine.adaptation.measure import fitting_pairs
    from esa.engine.data.corpus import load_split
    from esa.engine.data.instruct_pairs import CHAT_TEMPLATE, corpus_pairs

    if getattr(tokenizer, "chat_template", None) is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    plan = list(seed_plan)
    train = corpus_pairs(load_split(corpus_dir, "train"), max_pairs)
    part = fitting_pairs(tokenizer, domain_split(train, len(plan), plan.index(seed)), seq_len)
    heldout = fitting_pairs(tokenizer, corpus_pairs(load_split(corpus_dir, "evaluation")), seq_len)[:heldout_pairs]
    if not part or not heldout:
        raise ValueError(f"no instruction pair fits in {seq_len} tokens ({len(part)} train, {len(heldout)} held out)")
    return part, heldout


__all__ = ["doc_parts", "domain_parts", "domain_split", "pair_loss", "shifted_domain", "text_loss"]
