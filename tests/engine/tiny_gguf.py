"""Write a small transformers Llama model (and its byte-level BPE tokenizer.json) as a GGUF file, the way llama.cpp's
converter lays it out, so the GGUF conversion can be checked against the model it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

SPECIAL, NORMAL = 3, 1  # llama.cpp token types: CONTROL, NORMAL


def permute_rotary_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp interleaves each head's two rotary halves in q/k rows; transformers' loader undoes this."""
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's tensor names, q/k rows permuted."""
    config = model.config
    state = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": state["model.embed_tokens.weight"], "output_norm.weight": state["model.norm.weight"]}
    if not config.tie_word_embeddings:
        out["output.weight"] = state["lm_head.weight"]
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for layer in range(config.num_hidden_layers):
        for hf, gg in names.items():
            weight = state[f"model.layers.{layer}.{hf}.weight"]
            if gg == "attn_q":
                weight = permute_rotary_rows(weight, config.num_attention_heads)
            elif gg == "attn_k":
                weight = permute_rotary_rows(weight, config.num_key_value_heads)
            out[f"blk.{layer}.{gg}.weight"] = weight
    return out


def write_gguf(model, tokenizer_json: Path, path: Path, quantization: str = "F32") -> Path:
    """Write ``model`` as ``path``: F32 throughout, or Q4_1 for 2-D weights (norms stay F32, as llama.cpp does)."""
    import gguf

    config = model.config
    qtype = {"F32": gguf.GGMLQuantizationType.F32, "Q4_1": gguf.GGMLQuantizationType.Q4_1}[quantization]
    file_type = {"F32": gguf.LlamaFileType.ALL_F32, "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}[quantization]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_file_type(int(file_type))
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)

    # The byte-level BPE tokenizer, as llama.cpp's "gpt2" tokenizer model: tokens by id, merges "a b".
    spec = json.loads(Path(tokenizer_json).read_text())
    vocab = dict(spec["model"]["vocab"])
    for added in spec["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {added["content"] for added in spec["added_tokens"] if added["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([SPECIAL if token in special else NORMAL for token in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_add_bos_token(False)

    for name, weight in gguf_tensors(model).items():
        if weight.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, gguf.quants.quantize(weight, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, np.ascontiguousarray(weight, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
