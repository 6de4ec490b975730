"""Expert utilisation counted by router hooks equals the top-k of the router logits the model itself returns."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

from esa.engine.models.expert_load import expert_utilisation, routers


def tiny_mixtral() -> MixtralForCausalLM:
    torch.manual_seed(0)
    return MixtralForCausalLM(MixtralConfig(vocab_size=60, hidden_size=16, intermediate_size=16, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=2, num_local_experts=4,
                                            num_experts_per_tok=2)).eval()


def test_counts_match_the_top_k_of_the_returned_router_logits():
    model = tiny_mixtral()
    windows = [torch.randint(0, 60, (n,)) for n in (12, 7, 20)]
    load = expert_utilisation(model, windows)
    assert load["tokens"] == 39 and sorted(load["layers"]) == [0, 1]
    expected = torch.zeros(2, 4)
    with torch.no_grad():
        for window in windows:
            logits = model(input_ids=window.unsqueeze(0), output_router_logits=True).router_logits
            for layer, layer_logits in enumerate(logits):
                chosen = torch.topk(layer_logits.softmax(-1), 2, dim=-1).indices
                expected[layer] += torch.bincount(chosen.reshape(-1), minlength=4)
    for layer in (0, 1):
        assert torch.allclose(torch.tensor(load["layers"][layer], dtype=torch.float32),
                              expected[layer] / expected[layer].sum())
        assert abs(sum(load["layers"][layer]) - 1) < 1e-12
    assert len(routers(model)) == 2 and not model.training


def test_a_dense_model_has_no_routers():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    assert expert_utilisation(model, [torch.randint(0, 60, (5,))]) is None
