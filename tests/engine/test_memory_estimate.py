"""The written memory estimate of a score run, against a hand count on a tiny Llama built for real."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from esa.engine.models.shape import config_shape, model_shape
from esa.engine.models.targets import scored_parameters
from esa.engine.scoring.memory import (ACTIVATION_FACTOR, LOGIT_COPIES, METRIC_ACCUMULATORS, ModelShape,
                                       accumulators_of, estimate_memory)
from esa.engine.scoring.metrics import METRICS

V, H, I, L = 64, 16, 32, 2  # vocabulary, hidden, MLP width, layers


def tiny_config() -> LlamaConfig:
    return LlamaConfig(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=2,
                       num_key_value_heads=2, tie_word_embeddings=False)


# Counted by hand: per layer q, k, v, o (H×H), gate, up (I×H), down (H×I) and two norms (H); the embedding and
# lm_head (V×H) and the final norm are not scored by default.
PER_LAYER_SCORED = 4 * H * H + 3 * I * H
HAND = ModelShape(n_params=V * H + L * (PER_LAYER_SCORED + 2 * H) + H + V * H, n_scored=L * PER_LAYER_SCORED,
                  scored_inputs=L * (4 * H + 2 * H + I), largest=I * H, hidden_size=H, num_layers=L, vocab_size=V)


def test_shape_of_a_real_tiny_model_matches_the_hand_count():
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config())
    assert HAND.n_params == sum(p.numel() for p in model.parameters()) == 7248
    assert model_shape(model, scored_parameters(model)) == HAND


def test_shape_from_the_config_alone_is_the_same():
    assert config_shape(tiny_config()) == HAND
    with_head = config_shape(tiny_config(), include_lm_head=True)
    assert with_head.n_scored == HAND.n_scored + V * H and with_head.largest == V * H


@pytest.mark.parametrize("accum, size", [("float32", 4), ("bfloat16", 2)])
def test_gradient_family_estimate_is_the_hand_count(accum, size):
    metrics = ["grad_x_weight", "grad_squared", "obd", "act_mag"]
    estimate = estimate_memory(HAND, metrics, model_dtype="float32", accum_dtype=accum, microbatch=2, context=8,
                               save_scores=True)
    n = HAND.n_scored
    assert estimate.accumulators == ("grad_sum", "grad_sq", "act_sq")  # obd shares grad_squared's sums
    assert estimate.parts == {
        "weights": 7248 * 4,
        "accumulators": 2 * n * size + HAND.scored_inputs * 4,
        "probes": 0,
        "activations": 2 * 8 * (H * L * ACTIVATION_FACTOR * 4 + V * 4 * LOGIT_COPIES),
        "gradients": 2 * I * H * 4,
        "scores": n * 4,
    }
    assert estimate.total == sum(estimate.parts.values())
    assert estimate.to_allocate == estimate.total - 7248 * 4
    line = estimate.line()
    assert " GiB = weights " in line
    assert f"grad_sum at {accum}, grad_sq at {accum}, act_sq at float32" in line


@pytest.mark.parametrize("metric, accumulators", [
    ("grad_x_weight", ("grad_sum",)), ("grad_squared", ("grad_sq",)), ("obd", ("grad_sq",)),
    ("act_mag", ("act_sq",)), ("hutchinson_diag", ("hess",)), ("magnitude", ()), ("superweight", ())])
def test_accumulators_per_metric_family(metric, accumulators):
    assert accumulators_of([metric]) == accumulators
    # The torch-free table agrees with the engine's registry (superweight's sparse scores are not counted).
    assert set(METRIC_ACCUMULATORS[metric]) == set(METRICS[metric].accumulators) - {"superweight"}
    estimate = estimate_memory(HAND, [metric], model_dtype="float32", accum_dtype="float32", microbatch=1, context=8,
                               save_scores=False, cache_z=True)
    per_weight = sum(HAND.n_scored * 4 for a in accumulators if a != "act_sq")
    assert estimate.parts["accumulators"] == per_weight + (HAND.scored_inputs * 4 if "act_sq" in accumulators else 0)
    assert estimate.parts["probes"] == (HAND.n_scored * 4 if metric == "hutchinson_diag" else 0)


def test_forward_only_and_data_free_runs_hold_no_gradients():
    act = estimate_memory(HAND, ["act_mag"], model_dtype="bfloat16", accum_dtype="bfloat16", microbatch=1,
                          context=8, save_scores=False)
    assert act.parts["gradients"] == 0
    assert act.parts["activations"] == 8 * (H * 1 * ACTIVATION_FACTOR * 2 + V * 4 * LOGIT_COPIES)  # one layer
    free = estimate_memory(HAND, ["magnitude"], model_dtype="float32", accum_dtype="float32", microbatch=4,
                           context=8, save_scores=False)
    assert free.parts["activations"] == free.parts["gradients"] == free.parts["accumulators"] == 0


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="accum_dtype 'int8'"):
        estimate_memory(HAND, ["grad_x_weight"], model_dtype="float32", accum_dtype="int8", microbatch=1, context=8,
                        save_scores=False)


def test_the_registry_config_of_ref_tiny_has_the_trained_models_shape(ref_tiny):
    from esa.engine.models.loading import load_model
    from esa.show.memory import _shape

    model, _ = load_model(str(ref_tiny))
    for head in (False, True):
        loaded = model_shape(model, scored_parameters(model, include_lm_head=head))
        assert _shape("ref-tiny", ".", False, head, None)[0] == loaded
