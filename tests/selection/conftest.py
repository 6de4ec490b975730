"""Tiny randomly initialised models (no downloads): dense Llama, GPT-NeoX, and a packed-expert MoE."""

from __future__ import annotations

import pytest
import torch
from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, MixtralConfig,
                          MixtralForCausalLM)


@pytest.fixture(scope="session")
def tiny_llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1)).eval()


@pytest.fixture(scope="session")
def tiny_neox():
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                            num_hidden_layers=2, num_attention_heads=2)).eval()


@pytest.fixture(scope="session")
def tiny_moe():
    torch.manual_seed(0)
    return MixtralForCausalLM(MixtralConfig(vocab_size=64, hidden_size=16, intermediate_size=24,
                                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                            num_local_experts=4, num_experts_per_tok=2)).eval()
