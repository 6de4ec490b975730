"""Parameter counts a scaling fit uses, checked against counts made by hand from each architecture's shapes."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

from esa.engine.models.size import model_size

torch.manual_seed(0)
V, H, L, I = 50, 16, 2, 24


def test_llama_untied_head_and_embeddings_are_left_out():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                                         num_key_value_heads=2, intermediate_size=I, tie_word_embeddings=False))
    per_layer = 4 * H * H + 3 * H * I + 2 * H  # q k v o, gate up down, two norms
    size = model_size(model)
    assert size["non_embedding"] == L * per_layer + H  # + final norm
    assert size["total"] == size["non_embedding"] + 2 * V * H
    assert size["active_non_embedding"] == size["non_embedding"]


def test_gpt2_tied_head_counts_once_and_position_table_is_embedding():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=H, n_layer=L, n_head=2, n_positions=32))
    size = model_size(model)
    assert size["total"] == sum(p.numel() for p in model.parameters())  # tied: parameters() lists it once
    assert size["non_embedding"] == size["total"] - V * H - 32 * H


def test_mixtral_active_counts_the_routed_share_of_expert_weights():
    config = MixtralConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                           num_key_value_heads=2, intermediate_size=I, num_local_experts=4, num_experts_per_tok=2,
                           tie_word_embeddings=False)
    model = MixtralForCausalLM(config)
    size = model_size(model)
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    assert experts == L * 4 * 3 * H * I
    assert size["non_embedding"] == size["total"] - 2 * V * H
    assert size["active_non_embedding"] == size["non_embedding"] - experts // 2
