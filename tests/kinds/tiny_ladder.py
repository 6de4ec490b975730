"""Local checkpoints for the Phase-4 kind tests: four dense Llama widths, a Mixtral-shaped MoE and a "tuned" sibling of
the widest, all with ref-tiny's tokenizer (so they form one ladder), randomly initialised from fixed seeds.
Untrained weights are enough here: the tests check that the scaling and architecture analyses read and combine the
score runs' results correctly, not what trained models do."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

WIDTHS = {"m1": 16, "m2": 24, "m3": 32, "m4": 48}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _save(model, tokenizer_from: Path, out: Path) -> None:
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, out / name)


def build_tiny_ladder(root: Path, ref_tiny: Path) -> dict[str, str]:
    """Writes the checkpoints under root/ladder/ and returns {name: spec path (./ladder/<name>)}."""
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    vocab = AutoConfig.from_pretrained(ref_tiny).vocab_size
    common = dict(vocab_size=vocab, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                  max_position_embeddings=128, tie_word_embeddings=False)
    paths = {}
    for i, (name, width) in enumerate(WIDTHS.items()):
        torch.manual_seed(100 + i)
        model = LlamaForCausalLM(LlamaConfig(hidden_size=width, intermediate_size=2 * width, **common))
        _save(model, ref_tiny, root / "ladder" / name)
        paths[name] = f"./ladder/{name}"
        if name == "m4":
            with torch.no_grad():  # a fine-tuned sibling: the same weights, moved a little
                for param in model.parameters():
                    param.add_(0.05 * param.std() * torch.randn_like(param))
            _save(model, ref_tiny, root / "ladder" / "m4-tuned")
            paths["m4-tuned"] = "./ladder/m4-tuned"
    torch.manual_seed(200)
    moe = MixtralForCausalLM(MixtralConfig(hidden_size=24, intermediate_size=24, num_local_experts=4,
                                           num_experts_per_tok=2, **common))
    _save(moe, ref_tiny, root / "ladder" / "moe")
    paths["moe"] = "./ladder/moe"
    return paths
