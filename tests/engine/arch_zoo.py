"""Tiny random models of the transformer families esa names, and a planted super weight for any of them.

Planting uses the component names under test: the input embedding, layer 0's attention output, MLP input
projections (and router) and down projection are found by their labels, so a family whose names are not
understood cannot be planted either.
"""

from __future__ import annotations

import torch
import transformers as tf

from esa.engine.models.targets import component_of, layer_of
from esa.engine.scoring.down_projections import is_conv1d

VOCAB, HIDDEN, WIDE, EXPERTS = 64, 32, 64, 4
SPIKE_TOKEN, DIM, DIM2, ROW, COL, EXPERT = 5, 3, 4, 11, 7, 2
PROMPT_TOKENS = 128
_ATTN = dict(num_attention_heads=2, vocab_size=VOCAB)
_KV = dict(num_key_value_heads=2, max_position_embeddings=256)
_MOE = dict(moe_intermediate_size=WIDE, num_experts_per_tok=2)

CONFIGS = {
    "gpt2": lambda: tf.GPT2Config(n_layer=2, n_embd=HIDDEN, n_head=2, vocab_size=VOCAB, n_positions=256,
                                  bos_token_id=0, eos_token_id=0),
    "gpt_neox": lambda: tf.GPTNeoXConfig(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                         max_position_embeddings=256, **_ATTN),
    "falcon": lambda: tf.FalconConfig(num_hidden_layers=2, hidden_size=HIDDEN, **_ATTN),
    "bloom": lambda: tf.BloomConfig(n_layer=2, hidden_size=HIDDEN, n_head=2, vocab_size=VOCAB),
    "opt": lambda: tf.OPTConfig(num_hidden_layers=2, hidden_size=HIDDEN, ffn_dim=WIDE, word_embed_proj_dim=HIDDEN,
                                max_position_embeddings=256, **_ATTN),
    "phi": lambda: tf.PhiConfig(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                max_position_embeddings=256, **_ATTN),
    "qwen2": lambda: tf.Qwen2Config(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE, **_ATTN, **_KV),
    "qwen2_moe": lambda: tf.Qwen2MoeConfig(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                           shared_expert_intermediate_size=WIDE, num_experts=EXPERTS,
                                           **_MOE, **_ATTN, **_KV),
    "deepseek_v3": lambda: tf.DeepseekV3Config(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                               n_routed_experts=EXPERTS, n_shared_experts=1, first_k_dense_replace=1,
                                               kv_lora_rank=8, q_lora_rank=16, qk_rope_head_dim=8,
                                               qk_nope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1,
                                               **_MOE, **_ATTN, **_KV),
    "mixtral": lambda: tf.MixtralConfig(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                        num_local_experts=EXPERTS, num_experts_per_tok=2, **_ATTN, **_KV),
    "gpt_oss": lambda: tf.GptOssConfig(num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=WIDE,
                                       num_local_experts=EXPERTS, num_experts_per_tok=2, head_dim=16,
                                       layer_types=["full_attention"] * 2, **_ATTN, **_KV),
}


def tiny(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(CONFIGS[family]()).eval()


def prompt() -> torch.Tensor:
    """PROMPT_TOKENS random tokens; SPIKE_TOKEN occurs once, at position 0."""
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB - 1, (PROMPT_TOKENS,), generator=gen)
    ids[ids >= SPIKE_TOKEN] += 1
    ids[0] = SPIKE_TOKEN
    return ids


def _by_output(weight: torch.Tensor, transposed: bool) -> torch.Tensor:
    """A view of a 2-D weight indexed [output channel, input channel]."""
    return weight.T if transposed else weight


def _layer0(model: torch.nn.Module, components: set[str]):
    """(name, parameter, owner module) of layer 0's weights with these components; shared experts left out."""
    for name, p in model.named_parameters():
        if (layer_of(name) == 0 and component_of(name) in components and p.dim() >= 2 and "shared_expert" not in name
                and not name.endswith("bias")):
            yield name, p, model.get_submodule(name.rsplit(".", 1)[0])


def _bias_of(owner: torch.nn.Module, name: str):
    leaf = name.rsplit(".", 1)[1]
    return getattr(owner, "bias", None) if leaf == "weight" else getattr(owner, f"{leaf}_bias", None)


@torch.no_grad()
def plant(model: torch.nn.Module, *, weight: float = 10.0) -> None:
    """A massive activation at MLP input channel COL of layer 0, for SPIKE_TOKEN only, and a large down-projection
    weight from input channel COL to output channel ROW (for routed experts: in expert EXPERT, where the router
    sends SPIKE_TOKEN).

    SPIKE_TOKEN's embedding has +30 on DIM and −30 on DIM2; every other residual write (other embeddings,
    positions, layer 0's attention output) is equal on DIM and DIM2. The MLP input channel reads DIM − DIM2, so a
    LayerNorm's mean subtraction cancels and only SPIKE_TOKEN drives it.
    """
    for name, p in model.named_parameters():
        if component_of(name) == "embed" and p.dim() == 2:
            p[:, DIM] = 0.0
            p[:, DIM2] = 0.0
    emb = model.get_input_embeddings().weight
    emb[SPIKE_TOKEN, DIM], emb[SPIKE_TOKEN, DIM2] = 30.0, -30.0
    for name, p, owner in _layer0(model, {"attn_o"}):
        out = _by_output(p, is_conv1d(owner))
        out[DIM2] = out[DIM]
        bias = _bias_of(owner, name)
        if bias is not None:
            bias[DIM2] = bias[DIM]
    for name, p, owner in _layer0(model, {"router"}):
        p[EXPERT, DIM], p[EXPERT, DIM2] = 10.0, -10.0
    for name, p, owner in _layer0(model, {"mlp_up", "mlp_gate", "mlp_gate_up"}):
        bias = _bias_of(owner, name)
        if p.dim() == 3:  # packed experts: gate and up halves of one tensor
            transposed = bool(getattr(owner, "is_transposed", False))
            w = _by_output(p[EXPERT], transposed)
            half = w.shape[0] // 2
            channels = (COL, half + COL) if getattr(owner, "is_concatenated", True) else (2 * COL, 2 * COL + 1)
            bias = bias[EXPERT] if bias is not None else None
        else:
            w, channels = _by_output(p, is_conv1d(owner)), (COL,)
        for c in channels:
            w[c] = 0.0
            w[c, DIM], w[c, DIM2] = 5.0, -5.0
            if bias is not None:
                bias[c] = 0.0
    (name, p, owner), = _layer0(model, {"mlp_down"})
    if p.dim() == 3:
        _by_output(p[EXPERT], bool(getattr(owner, "is_transposed", False)))[ROW, COL] = weight
    else:
        _by_output(p, is_conv1d(owner))[ROW, COL] = weight
