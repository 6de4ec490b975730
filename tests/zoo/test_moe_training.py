"""A sparse MoE trains deterministically through the reference stage's code and loads as Mixtral."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from esa.configs import MoEReferenceModel, reference_config
from esa.engine.models.reference import build_reference

TINY_MOE = dict(name="moe-tiny", corpus="stdlib-tiny", vocab_size=300, hidden_size=16, num_layers=1, num_heads=2,
                intermediate_size=16, max_position_embeddings=64, train_steps=6, batch_size=2, seq_len=32,
                learning_rate=1e-3, num_experts=4, experts_per_token=2)


def test_params_with_experts_make_an_moe_config():
    assert isinstance(reference_config(TINY_MOE), MoEReferenceModel)
    dense = {k: v for k, v in TINY_MOE.items() if k not in ("num_experts", "experts_per_token")}
    assert type(reference_config(dense)).__name__ == "ReferenceModel"


def test_moe_training_is_deterministic_and_loads_as_mixtral(tiny_corpus, tmp_path):
    cfg = reference_config(TINY_MOE)
    logs = [build_reference(cfg, tiny_corpus, tmp_path / run) for run in ("a", "b")]
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in ("a", "b"))
    assert a.keys() == b.keys() and any(".experts." in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert logs[0]["n_params_active_non_embedding"] < logs[0]["n_params_non_embedding"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    assert model.config.model_type == "mixtral" and model.config.num_local_experts == 4
    assert model.config.output_router_logits is False
