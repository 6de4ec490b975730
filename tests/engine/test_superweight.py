"""The super weight detector finds a planted super weight exactly and reports none, with evidence, otherwise."""

from __future__ import annotations

import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.scoring.passes import score_model
from esa.engine.scoring.superweight import detect_superweights, quantile_abs

SPIKE_TOKEN, DIM, ROW, COL = 5, 3, 11, 7


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


def prompt() -> torch.Tensor:
    # 64 tokens: (tokens × channels) well above 1000 entries, so p99.9 is not the maximum itself.
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 63, (64,), generator=gen)
    ids[ids >= SPIKE_TOKEN] += 1  # the spike token occurs once, at position 0
    ids[0] = SPIKE_TOKEN
    return ids


@torch.no_grad()
def plant(model: LlamaForCausalLM) -> None:
    """A token-specific massive activation through layer 0's down_proj, as super weights make in real LLMs.

    Only SPIKE_TOKEN carries hidden dimension DIM (attention does not write it), so after the norm only that token
    drives the gate/up rows of channel COL; down_proj[ROW, COL] turns the resulting input spike into an output spike.
    """
    model.model.embed_tokens.weight[:, DIM] = 0.0
    model.model.embed_tokens.weight[SPIKE_TOKEN, DIM] = 30.0
    layer = model.model.layers[0]
    layer.self_attn.o_proj.weight[DIM, :] = 0.0
    for proj in (layer.mlp.gate_proj, layer.mlp.up_proj):
        proj.weight[COL, :] = 0.0
        proj.weight[COL, DIM] = 5.0
    layer.mlp.down_proj.weight[ROW, COL] = 10.0


def test_planted_super_weight_is_found_exactly():
    model = tiny_llama()
    plant(model)
    report = detect_superweights(model, prompt(), threshold=50.0)
    assert report.found and len(report.candidates) == 1
    cand = report.candidates[0]
    assert (cand.layer, cand.row, cand.col) == (0, ROW, COL)
    assert cand.param_name == "model.layers.0.mlp.down_proj.weight"
    assert cand.weight_value == 10.0
    assert cand.input_ratio > 50 and cand.output_ratio > 50
    assert cand.contribution > 0.99  # the planted weight makes the output spike
    assert report.layers[1].output_ratio < 50  # layer 1 is ordinary
    assert "1 found: layer 0 (11, 7)" in report.summary()


def test_unmodified_tiny_model_has_none_and_says_what_it_saw():
    report = detect_superweights(tiny_llama(), prompt(), threshold=50.0)
    assert not report.found and report.candidates == []
    assert [s.layer for s in report.layers] == [0, 1]
    for spikes in report.layers:
        assert 1.0 <= spikes.input_ratio < 10 and 1.0 <= spikes.output_ratio < 10
        assert spikes.n_entries == 64 * 32
    assert report.summary().startswith("none found over 2 layers")
    assert report.to_dict()["layers"][0]["input_ratio"] == report.layers[0].input_ratio


def test_registry_score_is_one_hot_at_the_detected_coordinate():
    model = tiny_llama()
    plant(model)
    params = list(model.named_parameters())
    result = score_model(model, params, [prompt()], ["superweight"], superweight_prompt=prompt(), progress=False)
    assert result.meta.superweight["found"] and result.meta.passes == ["superweight"]
    for name, p in params:
        score = result.score("superweight", name)
        assert score.shape == p.shape
        if name == "model.layers.0.mlp.down_proj.weight":
            assert torch.count_nonzero(score) == 1 and score[ROW, COL] > 50
        else:
            assert torch.count_nonzero(score) == 0


def test_quantile_matches_torch_quantile():
    x = torch.randn(5000)
    assert math.isclose(quantile_abs(x), float(torch.quantile(x.abs(), 0.999)), rel_tol=1e-6)
    assert math.isclose(quantile_abs(torch.tensor([3.0, -1.0, 2.0]), 0.5), 2.0)
