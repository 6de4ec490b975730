"""Sliding windows over separately tokenized documents, and seeded sampling of those windows.

Scheme (as in the Hugging Face perplexity guide, made exact): windows of ``context`` tokens start every ``stride``
tokens; the first window of a document scores all its tokens but the first (which has no left context), each later
window scores only the tokens no earlier window scored. Over all windows, every token of a document except its
first is scored exactly once, and each scored token sees at least ``context - stride`` tokens of left context
(except near the start of the document).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TokenizedDoc:
    doc_id: str
    ids: list[int]
    # UTF-8 bytes each token newly covers; sums to the document's byte length for lossless tokenizers.
    token_bytes: list[int]


@dataclass(frozen=True)
class Window:
    doc: int  # index into the tokenized document list
    start: int  # first token (inclusive)
    end: int  # last token (exclusive)
    n_scored: int  # the last n_scored tokens of the window are scored
    n_scored_bytes: int

    @property
    def length(self) -> int:
        return self.end - self.start


def _char_to_byte(text: str) -> np.ndarray:
    """Byte offset of every character offset 0..len(text)."""
    sizes = np.fromiter((len(c.encode("utf-8")) for c in text), dtype=np.int64, count=len(text))
    return np.concatenate([[0], np.cumsum(sizes)])


def tokenize_docs(tokenizer, docs: list[dict]) -> list[TokenizedDoc]:
    """Tokenize each ``{"id", "text"}`` document on its own, without special tokens."""
    out = []
    for doc in docs:
        text = doc["text"]
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        to_byte = _char_to_byte(text)
        covered, token_bytes = 0, []
        for _, end in enc["offset_mapping"]:
            # Bytes newly covered: byte-level BPE may split one character over several tokens with equal offsets.
            end_byte = int(to_byte[end])
            token_bytes.append(max(0, end_byte - covered))
            covered = max(covered, end_byte)
        out.append(TokenizedDoc(doc["id"], list(enc["input_ids"]), token_bytes))
    return out


def doc_windows(doc_index: int, doc: TokenizedDoc, context: int, stride: int) -> list[Window]:
    n = len(doc.ids)
    windows: list[Window] = []
    scored_until = 1  # token 0 has no left context
    for start in range(0, max(n - 1, 0), stride):
        end = min(start + context, n)
        n_scored = end - scored_until
        if n_scored > 0:
            nbytes = sum(doc.token_bytes[end - n_scored: end])
            windows.append(Window(doc_index, start, end, n_scored, nbytes))
            scored_until = end
        if end == n:
            break
    return windows


def check_window_settings(context: int, stride: int) -> None:
    if context < 2:
        raise ValueError(f"context must be at least 2 tokens, got {context}")
    if not 0 < stride < context:
        # stride == context would leave each window's first token without left context and unscored.
        raise ValueError(f"stride must satisfy 0 < stride < context, got stride={stride}, context={context}")


def make_windows(docs: list[TokenizedDoc], context: int, stride: int) -> list[Window]:
    check_window_settings(context, stride)
    return [w for i, doc in enumerate(docs) for w in doc_windows(i, doc, context, stride)]


def sample_windows(windows: list[Window], max_windows: int, seed: int) -> list[Window]:
    """A seeded draw without replacement of up to max_windows windows, returned in corpus order.

    max_windows <= 0 means all windows. When there are no more windows than max_windows, every seed returns the
    full set (the draw cannot differ).
    """
    if max_windows <= 0 or max_windows >= len(windows):
        return list(windows)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(windows), size=max_windows, replace=False))
    return [windows[i] for i in picked]


# ---------------------------------------------------------------- disjoint draws for several seeds


@dataclass
class WindowDraw:
    """The windows one seed evaluates or scores on, and where they came from (recorded in each stage's outputs).

    The pool is split into ``folds`` disjoint parts by document (by window when there are fewer documents than
    folds); seed number ``fold`` of the plan draws only from its own part, so two seeds never share a document.
    """

    windows: list[Window]
    unit: str  # document | window
    folds: int
    fold: int
    pool_windows: int
    pool_docs: int
    fold_windows: int
    fold_docs: int
    requested: int  # max_windows (0 = all)
    doc_ids: list[str] = field(default_factory=list)  # documents the drawn windows come from, sorted
    window_ids: list[str] = field(default_factory=list)  # "doc_id:start" of every drawn window, sorted

    @property
    def shortfall(self) -> bool:
        """Fewer windows than asked for: the seed's part of the pool is too small."""
        return 0 < self.requested and len(self.windows) < self.requested

    def record(self) -> dict:
        return {"unit": self.unit, "folds": self.folds, "fold": self.fold, "pool_windows": self.pool_windows,
                "pool_docs": self.pool_docs, "fold_windows": self.fold_windows, "fold_docs": self.fold_docs,
                "requested": self.requested, "n_windows": len(self.windows), "shortfall": self.shortfall,
                "n_docs": len(self.doc_ids), "doc_ids": self.doc_ids, "window_ids": self.window_ids}


def _stable_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fold_of_docs(doc_ids: list[str], sizes: list[int], folds: int) -> list[int]:
    """Balanced, deterministic assignment: largest documents first (ties by hash of the id), each to the part
    with the fewest windows so far. Depends only on the pool, never on a seed."""
    order = sorted(range(len(doc_ids)), key=lambda i: (-sizes[i], _stable_key(doc_ids[i])))
    load = [0] * folds
    fold = [0] * len(doc_ids)
    for i in order:
        target = min(range(folds), key=lambda f: (load[f], f))
        fold[i] = target
        load[target] += sizes[i]
    return fold


def draw_windows(docs: list[TokenizedDoc], windows: list[Window], *, max_windows: int, seed: int, folds: int = 1,
                 fold: int = 0) -> WindowDraw:
    """Part ``fold`` of ``folds`` document-disjoint parts of the pool, then a seeded draw of up to ``max_windows``
    of its windows (all when ``max_windows`` <= 0 or the part is smaller), returned in corpus order."""
    if folds < 1 or not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds} is not a valid part")
    by_doc: dict[int, int] = {}
    for w in windows:
        by_doc[w.doc] = by_doc.get(w.doc, 0) + 1
    doc_index = sorted(by_doc)
    unit = "document" if len(doc_index) >= folds else "window"
    if unit == "document":
        parts = _fold_of_docs([docs[d].doc_id for d in doc_index], [by_doc[d] for d in doc_index], folds)
        part_of = dict(zip(doc_index, parts))
        mine = [w for w in windows if part_of[w.doc] == fold]
    else:
        order = sorted(range(len(windows)), key=lambda i: _stable_key(f"{docs[windows[i].doc].doc_id}:"
                                                                      f"{windows[i].start}"))
        chosen = sorted(order[fold::folds])
        mine = [windows[i] for i in chosen]
    picked = sample_windows(mine, max_windows, seed)
    return WindowDraw(
        windows=picked, unit=unit, folds=folds, fold=fold, pool_windows=len(windows), pool_docs=len(doc_index),
        fold_windows=len(mine), fold_docs=len({w.doc for w in mine}), requested=int(max_windows),
        doc_ids=sorted({docs[w.doc].doc_id for w in picked}),
        window_ids=sorted(f"{docs[w.doc].doc_id}:{w.start}" for w in picked))

