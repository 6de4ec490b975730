from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file

from esa.engine.models.reference import build_reference
from esa.registry import REFERENCE_MODELS


def test_reference_loads_and_learned(ref_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = REFERENCE_MODELS["ref-tiny"]
    model = AutoModelForCausalLM.from_pretrained(ref_tiny)
    tok = AutoTokenizer.from_pretrained(ref_tiny)
    assert model.config.model_type == "llama" and not model.config.tie_word_embeddings
    assert model.config.vocab_size == cfg.vocab_size == len(tok)
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    log = json.loads((ref_tiny / "train_log.json").read_text())
    assert log["n_params"] == sum(p.numel() for p in model.parameters())
    assert log["heldout_split"] == "calibration"
    # Training moved the loss well below the uniform-distribution loss ln(vocab).
    assert log["loss_curve"][-1]["loss"] < log["loss_curve"][0]["loss"] - 0.5
    assert log["heldout_loss"] < math.log(cfg.vocab_size) - 0.5


def test_reference_training_is_deterministic(ref_tiny, tiny_corpus, tmp_path):
    build_reference(REFERENCE_MODELS["ref-tiny"], tiny_corpus, tmp_path / "again")
    a, b = load_file(ref_tiny / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert (ref_tiny / "tokenizer.json").read_text() == (tmp_path / "again" / "tokenizer.json").read_text()
