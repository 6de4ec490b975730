"""A super weight planted by hand in a tiny model of each family is found at its stored (row, col).

nn.Linear and packed experts store a down projection as (output, input); GPT-2's Conv1D and GPT-OSS's packed
experts as (input, output). The planted weight runs from input channel COL to output channel ROW, so the
candidate must sit at (ROW, COL) in the first layout and (COL, ROW) in the second.
"""

from __future__ import annotations

import pytest
import torch

from arch_zoo import COL, EXPERT, ROW, plant, prompt, tiny
from esa.engine.scoring.passes import score_model
from esa.engine.scoring.superweight import detect_superweights

PLANTED = {  # family: (parameter, routed expert, stored (in, out))
    "gpt2": ("transformer.h.0.mlp.c_proj.weight", None, True),
    "gpt_neox": ("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", None, False),
    "falcon": ("transformer.h.0.mlp.dense_4h_to_h.weight", None, False),
    "bloom": ("transformer.h.0.mlp.dense_4h_to_h.weight", None, False),
    "opt": ("model.decoder.layers.0.fc2.weight", None, False),
    "phi": ("model.layers.0.mlp.fc2.weight", None, False),
    "qwen2": ("model.layers.0.mlp.down_proj.weight", None, False),
    "qwen2_moe": ("model.layers.0.mlp.experts.down_proj", EXPERT, False),
    "mixtral": ("model.layers.0.mlp.experts.down_proj", EXPERT, False),
    "gpt_oss": ("model.layers.0.mlp.experts.down_proj", EXPERT, True),
}


def _stored(transposed: bool) -> tuple[int, int]:
    return (COL, ROW) if transposed else (ROW, COL)


@pytest.mark.parametrize("family", sorted(PLANTED))
def test_planted_super_weight_is_found_at_its_stored_coordinate(family):
    param_name, expert, transposed = PLANTED[family]
    model = tiny(family)
    plant(model)
    report = detect_superweights(model, prompt(), threshold=50.0)
    assert len(report.candidates) == 1, report.summary()
    cand = report.candidates[0]
    row, col = _stored(transposed)
    assert (cand.layer, cand.param_name, cand.expert, cand.row, cand.col) == (0, param_name, expert, row, col)
    assert (cand.input_channel, cand.output_channel) == (COL, ROW)
    stored = dict(model.named_parameters())[param_name]
    stored = stored[expert] if expert is not None else stored
    assert stored[row, col] == cand.weight_value == 10.0
    assert cand.input_ratio > 50 and cand.output_ratio > 50
    assert cand.contribution > 0.99  # the planted weight makes the output spike
    assert all(s.output_ratio < 50 for s in report.layers if s.layer == 1)


@pytest.mark.parametrize("family", ["gpt2", "qwen2_moe", "gpt_oss"])
def test_unplanted_model_has_no_candidate(family):
    report = detect_superweights(tiny(family), prompt(), threshold=50.0)
    assert not report.found and report.layers
    assert report.summary().startswith(f"none found over {len(report.layers)} layers")


@pytest.mark.parametrize("family", ["gpt2", "qwen2_moe", "gpt_oss"])
def test_registry_score_is_one_hot_at_the_stored_coordinate(family):
    """The superweight score marks the same coordinate selection and perturbation will read."""
    param_name, expert, transposed = PLANTED[family]
    model = tiny(family)
    plant(model)
    params = list(model.named_parameters())
    result = score_model(model, params, [prompt()], ["superweight"], superweight_prompt=prompt(), progress=False)
    assert result.meta.superweight["found"]
    index = _stored(transposed) if expert is None else (expert, *_stored(transposed))
    for name, p in params:
        score = result.score("superweight", name)
        assert score.shape == p.shape
        if name == param_name:
            assert torch.count_nonzero(score) == 1 and score[index] > 50
        else:
            assert torch.count_nonzero(score) == 0
