import torch

from esa.engine.models.targets import component_of, layer_of, scored_parameters


def test_llama_components_and_defaults(tiny_llama):
    targets = scored_parameters(tiny_llama)
    comps = [t.component for t in targets if t.layer == 0]
    assert comps == ["attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down"]
    assert all(t.parameter.dim() == 2 and t.expert is None for t in targets)
    assert {t.layer for t in targets} == {0, 1}
    names = {t.name for t in scored_parameters(tiny_llama, include_embeddings=True, include_lm_head=True)}
    assert "model.embed_tokens.weight" in names and "lm_head.weight" in names
    only = scored_parameters(tiny_llama, components=["mlp_down"])
    assert [t.name for t in only] == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]


def test_neox_components(tiny_neox):
    targets = scored_parameters(tiny_neox, include_embeddings=True, include_lm_head=True)
    by_name = {t.name: t.component for t in targets}
    assert by_name["gpt_neox.embed_in.weight"] == "embed"
    assert by_name["lm_head.weight"] == "lm_head"
    assert by_name["gpt_neox.layers.1.attention.query_key_value.weight"] == "attn_qkv"
    assert by_name["gpt_neox.layers.1.attention.dense.weight"] == "attn_o"
    assert by_name["gpt_neox.layers.1.mlp.dense_h_to_4h.weight"] == "mlp_up"
    assert by_name["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"] == "mlp_down"
    assert not any("bias" in n or "norm" in n for n in by_name)


def test_name_table():
    cases = {
        "model.layers.3.self_attn.qkv_proj.weight": ("attn_qkv", 3),
        "model.layers.3.mlp.gate_up_proj.weight": ("mlp_gate_up", 3),
        "transformer.h.2.attn.c_attn.weight": ("attn_qkv", 2),
        "transformer.h.2.attn.c_proj.weight": ("attn_o", 2),
        "transformer.h.2.mlp.c_fc.weight": ("mlp_up", 2),
        "transformer.h.2.mlp.c_proj.weight": ("mlp_down", 2),
        "transformer.wte.weight": ("embed", None),
        "model.layers.0.mlp.gate.weight": ("router", 0),
        "model.layers.0.mlp.experts.gate_up_proj": ("mlp_gate_up", 0),
        "model.layers.0.mlp.experts.down_proj": ("mlp_down", 0),
        "model.layers.1.mlp.gate_proj.weight": ("mlp_gate", 1),
        "something.strange.weight": ("other", None),
    }
    for name, (component, layer) in cases.items():
        assert (component_of(name), layer_of(name)) == (component, layer), name


def test_moe_expert_slices(tiny_moe):
    targets = scored_parameters(tiny_moe)
    packed = [t for t in targets if t.name == "model.layers.1.mlp.experts.gate_up_proj"]
    param = packed[0].parameter
    assert param.dim() == 3 and [t.expert for t in packed] == list(range(param.shape[0]))
    assert all(t.shape == tuple(param.shape[1:]) and t.component == "mlp_gate_up" for t in packed)
    routers = [t for t in targets if t.component == "router"]
    assert len(routers) == 2 and all(t.expert is None for t in routers)
    t = packed[2]
    score = torch.arange(param.numel(), dtype=torch.float32).reshape(param.shape)
    assert torch.equal(t.view(score), score[2]) and t.view(score).data_ptr() == score[2].data_ptr()
    assert torch.equal(t.weight(), param.detach()[2])
    # flat index in the whole parameter = slice flat index + offset
    assert float(score.reshape(-1)[t.flat_offset + 5]) == float(t.view(score).reshape(-1)[5])
