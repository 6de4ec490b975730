"""Sliding windows over separately tokenized documents, and seeded sampling of those windows.

Scheme (as in the Hugging Face perplexity guide, made exact): windows of ``context`` tokens start every ``stride``
tokens; the first window of a document scores all its tokens but the first (which has no left context), each later
window scores only the tokens no earlier window scored. Over all windows, every token of a document except its
first is scored exactly once, and each scored token sees at least ``context - stride`` tokens of left context
(except near the start of the document).
"""

from __future__ import annotations

from dataclasses import dataclass

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
