"""The embedded model ladder: one family and recipe, sizes that sort, a 30× span, and an active-matched MoE."""

from __future__ import annotations

import pytest

from esa.configs import MoEReferenceModel
from esa.engine.models.reference import active_non_embedding_params, new_model, non_embedding_params
from esa.registry import LADDER, LADDER_RECIPE, REFERENCE_MODELS


class _Tokenizer:
    """Just what building a model needs: the vocabulary size and an end-of-text id."""

    eos_token_id = 0

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def _counts(name: str) -> tuple[int, int]:
    cfg = REFERENCE_MODELS[name]
    model = new_model(cfg, _Tokenizer(cfg.vocab_size))
    return non_embedding_params(model), active_non_embedding_params(cfg, model)


def _hand_count(hidden: int, layers: int, intermediate: int) -> int:
    # q, k, v, o (h×h each), gate, up, down (h×i each), two RMSNorms per layer, the final norm.
    return layers * (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden) + hidden


def test_ladder_is_one_family_sorted_by_size_spanning_30x():
    assert len(LADDER) >= 6 and LADDER[-1] == "ref-s"
    sizes = []
    for name in LADDER:
        cfg = REFERENCE_MODELS[name]
        assert type(cfg) is type(REFERENCE_MODELS["ref-s"]), name  # dense Llama
        for key, value in LADDER_RECIPE.items():
            assert getattr(cfg, key) == value, (name, key)
        assert cfg.seed == 0
        total, active = _counts(name)
        assert total == active == _hand_count(cfg.hidden_size, cfg.num_layers, cfg.intermediate_size), name
        sizes.append(total)
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[-1] / sizes[0] >= 30


def test_moe_is_mixtral_shaped_with_active_parameters_matched():
    cfg = REFERENCE_MODELS["ref-moe"]
    assert isinstance(cfg, MoEReferenceModel) and (cfg.num_experts, cfg.experts_per_token) == (4, 2)
    total, active = _counts("ref-moe")
    dense_total, _ = _counts("ref-2xs")
    assert total > 1.5 * dense_total  # four half-width experts store twice the dense MLP
    assert abs(active - dense_total) / dense_total < 0.01  # only the router's few weights differ
    model = new_model(cfg, _Tokenizer(cfg.vocab_size))
    assert model.config.model_type == "mixtral" and model.config.sliding_window is None
    assert model.config.output_router_logits is False


@pytest.mark.parametrize("name", ["ref-moe"])
def test_moe_evaluation_loss_is_plain_nll(name):
    import torch

    cfg = REFERENCE_MODELS[name]
    torch.manual_seed(0)
    model = new_model(cfg, _Tokenizer(cfg.vocab_size)).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 16))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
        manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, cfg.vocab_size),
                                                   ids[:, 1:].reshape(-1))
        with_aux = model(input_ids=ids, labels=ids, output_router_logits=True).loss
    assert torch.allclose(out.loss, manual, atol=1e-6)
    assert with_aux > out.loss  # the load-balancing term exists, and only when asked for
