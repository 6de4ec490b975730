"""Component names and MLP down projections of every family esa knows, on tiny random models (no network)."""

from __future__ import annotations

import pytest
import torch

from arch_zoo import CONFIGS, EXPERTS, prompt, tiny
from esa.engine.models.targets import component_of, scored_parameters
from esa.engine.scoring.down_projections import capture, down_projections

FAMILIES = sorted(CONFIGS)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_scored_weight_has_a_named_component(family):
    targets = scored_parameters(tiny(family), include_embeddings=True, include_lm_head=True)
    assert targets
    assert [t.key for t in targets if t.component == "other"] == []


@pytest.mark.parametrize("name,component", [
    # Llama/Mixtral labels stay as they were.
    ("model.layers.3.self_attn.q_proj.weight", "attn_q"),
    ("model.layers.3.self_attn.o_proj.weight", "attn_o"),
    ("model.layers.3.mlp.gate_proj.weight", "mlp_gate"),
    ("model.layers.3.mlp.down_proj.weight", "mlp_down"),
    ("model.layers.3.block_sparse_moe.experts.2.w2.weight", "mlp_down"),
    ("model.layers.3.mlp.experts.gate_up_proj", "mlp_gate_up"),
    ("model.layers.3.mlp.gate.weight", "router"),
    ("model.embed_tokens.weight", "embed"),
    ("lm_head.weight", "lm_head"),
    # Falcon / BLOOM
    ("transformer.h.0.self_attention.query_key_value.weight", "attn_qkv"),
    ("transformer.h.0.self_attention.dense.weight", "attn_o"),
    ("transformer.h.0.mlp.dense_h_to_4h.weight", "mlp_up"),
    ("transformer.h.0.mlp.dense_4h_to_h.weight", "mlp_down"),
    ("transformer.word_embeddings.weight", "embed"),
    # GPT-2 (Conv1D)
    ("transformer.h.1.attn.c_attn.weight", "attn_qkv"),
    ("transformer.h.1.attn.c_proj.weight", "attn_o"),
    ("transformer.h.1.mlp.c_fc.weight", "mlp_up"),
    ("transformer.h.1.mlp.c_proj.weight", "mlp_down"),
    ("transformer.wpe.weight", "embed"),
    # GPT-NeoX / Pythia
    ("gpt_neox.layers.5.attention.query_key_value.weight", "attn_qkv"),
    ("gpt_neox.layers.5.attention.dense.weight", "attn_o"),
    ("gpt_neox.layers.5.mlp.dense_4h_to_h.weight", "mlp_down"),
    ("embed_out.weight", "lm_head"),
    # OPT
    ("model.decoder.layers.0.self_attn.out_proj.weight", "attn_o"),
    ("model.decoder.layers.0.fc1.weight", "mlp_up"),
    ("model.decoder.layers.0.fc2.weight", "mlp_down"),
    ("model.decoder.embed_positions.weight", "embed"),
    # Phi
    ("model.layers.0.self_attn.dense.weight", "attn_o"),
    ("model.layers.0.mlp.fc2.weight", "mlp_down"),
    # Qwen2-MoE: packed experts, shared expert and its gate
    ("model.layers.1.mlp.experts.down_proj", "mlp_down"),
    ("model.layers.1.mlp.shared_expert.down_proj.weight", "mlp_down"),
    ("model.layers.1.mlp.shared_expert_gate.weight", "router"),
    # DeepSeek-V2/V3: latent attention, shared experts
    ("model.layers.1.self_attn.q_a_proj.weight", "attn_q"),
    ("model.layers.1.self_attn.q_b_proj.weight", "attn_q"),
    ("model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "attn_kv"),
    ("model.layers.1.self_attn.kv_b_proj.weight", "attn_kv"),
    ("model.layers.1.mlp.shared_experts.down_proj.weight", "mlp_down"),
    # GPT-OSS
    ("model.layers.0.mlp.router.weight", "router"),
    ("model.layers.0.mystery.weight", "other"),
])
def test_hand_picked_labels(name, component):
    assert component_of(name) == component


# (down projections per dense layer, per MoE layer) and whether they are stored (in, out).
EXPECTED_DOWN = {
    "gpt2": ("transformer.h.{}.mlp.c_proj.weight", True),
    "gpt_neox": ("gpt_neox.layers.{}.mlp.dense_4h_to_h.weight", False),
    "falcon": ("transformer.h.{}.mlp.dense_4h_to_h.weight", False),
    "bloom": ("transformer.h.{}.mlp.dense_4h_to_h.weight", False),
    "opt": ("model.decoder.layers.{}.fc2.weight", False),
    "phi": ("model.layers.{}.mlp.fc2.weight", False),
    "qwen2": ("model.layers.{}.mlp.down_proj.weight", False),
}


@pytest.mark.parametrize("family", sorted(EXPECTED_DOWN))
def test_dense_families_have_one_down_projection_per_layer(family):
    pattern, transposed = EXPECTED_DOWN[family]
    found = down_projections(tiny(family))
    assert [(p.layer, p.param_name, p.expert, p.transposed) for p in found] == [
        (layer, pattern.format(layer), None, transposed) for layer in (0, 1)]


@pytest.mark.parametrize("family,shared,transposed", [("qwen2_moe", "shared_expert", False),
                                                      ("mixtral", None, False), ("gpt_oss", None, True)])
def test_moe_families_list_every_expert_and_the_shared_one(family, shared, transposed):
    found = down_projections(tiny(family))
    for layer in (0, 1):
        packed = [p for p in found if p.layer == layer and p.packed]
        assert [p.expert for p in packed] == list(range(EXPERTS))
        assert {p.param_name for p in packed} == {f"model.layers.{layer}.mlp.experts.down_proj"}
        assert {p.transposed for p in packed} == {transposed}
        dense = [p.param_name for p in found if p.layer == layer and not p.packed]
        assert dense == ([f"model.layers.{layer}.mlp.{shared}.down_proj.weight"] if shared else [])


def test_deepseek_dense_first_layer_then_experts():
    found = down_projections(tiny("deepseek_v3"))
    assert [(p.layer, p.key) for p in found if p.layer == 0] == [(0, "model.layers.0.mlp.down_proj.weight")]
    assert {p.key for p in found if p.layer == 1} == {
        *(f"model.layers.1.mlp.experts.down_proj[{e}]" for e in range(EXPERTS)),
        "model.layers.1.mlp.shared_experts.down_proj.weight"}


def _bias(model, proj):
    owner = model.get_submodule(proj.module)
    if proj.packed:
        bias = getattr(owner, proj.param_name.rsplit(".", 1)[1] + "_bias", None)
        return None if bias is None else bias[proj.expert]
    return owner.bias


@pytest.mark.parametrize("family", FAMILIES)
def test_captured_input_and_output_agree_with_the_stated_orientation(family):
    """y = x · Wᵀ (+ b) with W indexed [output, input]: the channels the detector reports are the real ones."""
    model = tiny(family)
    found = down_projections(model)
    captured = capture(model, found, prompt().reshape(1, -1))
    assert {p.key for p in found if not p.packed} <= set(captured)
    assert any(p.packed for p in found) == any(p.key in captured for p in found if p.packed)  # experts ran
    for proj in found:
        if proj.key not in captured:
            continue
        x, y = captured[proj.key]
        w = proj.weight()
        by_output = w.T if proj.transposed else w
        expected = x @ by_output.T
        bias = _bias(model, proj)
        if bias is not None:
            expected = expected + bias
        torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
