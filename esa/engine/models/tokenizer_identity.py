"""A fingerprint of a tokenizer's vocabulary: models whose fingerprints differ split text into different tokens, so
per-token quantities of them do not belong in one fit (a scaling ladder checks it)."""

from __future__ import annotations

import hashlib
import json


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the sorted (token, id) pairs and the special tokens."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))
    return hashlib.sha256(json.dumps([vocab, special], ensure_ascii=False).encode()).hexdigest()
