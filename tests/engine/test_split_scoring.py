"""A model split by accelerate's device_map scores exactly as the same model on one device.

On a CPU-only machine the only split there is is host memory + disk: the layers past ``max_memory`` (or those an
explicit map sends to "disk") are offloaded, kept as meta parameters and materialised for each forward. Their
gradients then reach a new weight object every forward, which the gradient sweep must still fold into the right
accumulators; their values come from accelerate's weights map.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from esa.engine.models.loading import load_model
from esa.engine.models.placement import dispatch_settings, offload_entry, register_offloaded, stored_value
from esa.engine.models.targets import scored_parameters
from esa.engine.scoring.passes import score_model
from esa.engine.scoring.select import Selector

GRADIENT_METRICS = ["grad_x_weight", "grad_squared", "obd", "act_mag", "magnitude"]
LAYERS = 4


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("split-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def windows():
    generator = torch.Generator().manual_seed(1)
    # Unequal lengths: microbatches of 2 are padded, so the masked path is split too.
    return [torch.randint(0, 300, (n,), generator=generator) for n in (33, 20, 33, 27, 12, 33)]


def split_map() -> dict[str, str]:
    """Embedding and the first half of the layers in memory, the rest (and the head) on disk."""
    placed = {"model.embed_tokens": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"}
    placed.update({f"model.layers.{i}": "cpu" if i < LAYERS // 2 else "disk" for i in range(LAYERS)})
    return placed


def load(folder, **placement):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **dispatch_settings(**placement))
    register_offloaded(model)
    return model


def scored(model, windows, metrics=GRADIENT_METRICS):
    targets = scored_parameters(model, include_lm_head=True)
    unique = list({t.name: t.parameter for t in targets}.items())
    return targets, score_model(model, unique, windows, metrics, microbatch=2, lazy=True, progress=False)


def test_explicit_split_over_memory_and_disk_scores_as_unsplit(saved_model, windows):
    whole_targets, whole = scored(load(saved_model, device_map=None, max_memory=None), windows)
    split = load(saved_model, device_map=split_map(), max_memory=None)
    assert set(split.hf_device_map.values()) == {"cpu", "disk"}
    targets, result = scored(split, windows)
    offloaded = [t.name for t in targets if offload_entry(t.parameter) is not None]
    assert offloaded and len(offloaded) < len(targets)  # both kinds of placement are scored
    assert all(".layers.0." not in name for name in offloaded)
    for metric in GRADIENT_METRICS:
        for name in whole.names:
            expected, got = whole.score(metric, name), result.score(metric, name)
            if expected is None:
                assert got is None
                continue
            assert got.device.type == "cpu" and expected.abs().max() > 0
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=0, msg=f"{metric} {name}")


def test_max_memory_split_gives_the_same_per_matrix_and_global_top_k(saved_model, windows):
    _, whole = scored(load(saved_model, device_map=None, max_memory=None), windows, ["grad_x_weight"])
    budget = int(0.4 * sum(p.numel() * 4 for p in LlamaForCausalLM(
        LlamaConfig.from_pretrained(saved_model)).parameters()))
    split = load(saved_model, device_map="auto", max_memory={"cpu": budget})
    assert "disk" in split.hf_device_map.values()
    targets, result = scored(split, windows, ["grad_x_weight"])
    frames = []
    for outcome in (whole, result):
        for mode in ("per_layer", "global"):
            selector = Selector(5, mode)
            for target in targets:
                selector.add(target, outcome.score("grad_x_weight", target.name))
            frames.append(selector.result()[["tensor", "row", "col", "score", "rank"]])
    assert frames[0].equals(frames[2]) and frames[1].equals(frames[3])
    assert len(frames[1]) == 5 and frames[0]["tensor"].nunique() == len(targets)


def test_offloaded_weight_values_come_from_accelerates_copy(saved_model):
    whole = load(saved_model, device_map=None, max_memory=None)
    split = load(saved_model, device_map=split_map(), max_memory=None)
    name = f"model.layers.{LAYERS - 1}.mlp.down_proj.weight"
    param = dict(split.named_parameters())[name]
    assert param.device.type == "meta" and offload_entry(param) is not None
    assert torch.equal(stored_value(param), dict(whole.named_parameters())[name].detach())
    # A target's weight (what bottom-k's non-zero rule and the selectors read) is the same value.
    target = next(t for t in scored_parameters(split) if t.name == name)
    assert torch.equal(target.weight(), stored_value(param))


def test_hutchinson_refuses_offloaded_weights(saved_model, windows):
    split = load(saved_model, device_map=split_map(), max_memory=None)
    with pytest.raises(ValueError, match="hutchinson_diag need every scored weight on a device"):
        scored(split, windows, ["hutchinson_diag"])


def test_load_model_places_by_device_map_and_leaves_unsplit_loads_alone(saved_model):
    model, _ = _load_with_tokenizer(saved_model, device_map=split_map())
    assert model.hf_device_map["lm_head"] == "disk" and offload_entry(model.lm_head.weight) is not None
    plain, _ = _load_with_tokenizer(saved_model)
    assert getattr(plain, "hf_device_map", None) is None
    with pytest.raises(ValueError, match="max_memory needs a device_map"):
        dispatch_settings(None, {"cpu": "1GB"})


def _load_with_tokenizer(folder, **placement):
    """load_model reads a tokenizer beside the weights: give the random model a byte-level one."""
    from esa.engine.data.tokenizer import save_tokenizer, train_tokenizer

    if not (folder / "tokenizer.json").exists():
        save_tokenizer(train_tokenizer(["some text to learn a few merges from"] * 4, vocab_size=300, model_max_length=64),
                       folder)
    return load_model(str(folder), **placement)
