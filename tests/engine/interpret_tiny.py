"""Tiny random Llama models for the interpretability tests, and a bit-exact snapshot of their parameters."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.perturbation.bitflip import int_view_dtype


def tiny(*, heads: int = 2, kv_heads: int = 2, hidden: int = 16, layers: int = 2, vocab: int = 64,
         seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def raw(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's raw bits (a copy)."""
    return {n: p.detach().reshape(-1).view(int_view_dtype(p.dtype)).clone() for n, p in model.named_parameters()}


def same_bits(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
