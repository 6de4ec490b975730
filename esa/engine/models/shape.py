"""A model's shape as the memory estimate counts it: from a loaded model, or from a config alone.

A config becomes a model on the meta device (shapes and names, no storage), so the scored matrices are chosen by
the same rules as the score stage's (esa.engine.models.targets) for any architecture transformers knows.
"""

from __future__ import annotations

import torch

from esa.engine.models.targets import Target, scored_parameters
from esa.engine.scoring.memory import ModelShape


def _config_value(config, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def model_shape(model: torch.nn.Module, targets: list[Target]) -> ModelShape:
    """The shape of ``model`` with ``targets`` scored (each parameter once, however many expert slices it has)."""
    unique = {id(t.parameter): t.parameter for t in targets}
    linears = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    config = getattr(model, "config", None)
    text = getattr(config, "get_text_config", lambda: config)() if config is not None else None
    return ModelShape(
        n_params=sum(p.numel() for p in model.parameters()),
        n_scored=sum(p.numel() for p in unique.values()),
        scored_inputs=sum(p.shape[1] for pid, p in unique.items() if pid in linears and p.dim() == 2),
        largest=max((p.numel() for p in unique.values()), default=0),
        hidden_size=_config_value(text, "hidden_size", "n_embd", "d_model"),
        num_layers=_config_value(text, "num_hidden_layers", "n_layer", "num_layers"),
        vocab_size=_config_value(text, "vocab_size"),
    )


def config_shape(config, *, include_embeddings: bool = False, include_lm_head: bool = False,
                 components: list[str] | None = None) -> ModelShape:
    """The shape of the causal LM a transformers config describes, built on the meta device (nothing loaded)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    targets = scored_parameters(model, include_embeddings=include_embeddings, include_lm_head=include_lm_head,
                                components=components)
    return model_shape(model, targets)
