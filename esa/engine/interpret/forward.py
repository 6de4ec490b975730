"""One forward pass that keeps the residual stream after every decoder layer and, on request, every layer's
attention probabilities.

The residual stream is taken from forward hooks on the decoder layers rather than ``output_hidden_states``:
transformers hands back the last layer's state after the final norm, which would hide a massive activation there.
Attention probabilities need eager attention (SDPA/flash never form them), so the pass switches to it and back.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from esa.engine.scoring.gradient_pass import eager_attention

# The names decoder-layer lists go by (Llama/Mistral/Qwen `layers`, GPT-2 `h`, others `blocks`/`layer`), as in
# esa.engine.models.targets.layer_of.
_LAYER_LISTS = ("layers", "h", "blocks", "layer")


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder layers: the first non-empty ModuleList named like one."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and name.rsplit(".", 1)[-1] in _LAYER_LISTS:
            return module
    raise ValueError("the model has no decoder-layer list (a ModuleList named layers, h, blocks or layer)")


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class Pass:
    """What one forward pass kept, per decoder layer: residual stream [B, T, D] (float32, on the CPU) and, when
    asked for, attention probabilities [B, H, T, T] (float32, on the model's device)."""

    residuals: list[torch.Tensor] = field(repr=False)
    attentions: list[torch.Tensor] | None = field(default=None, repr=False)


@torch.no_grad()
def forward_pass(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 *, attentions: bool = True) -> Pass:
    """Run ``input_ids`` ([T] or [B, T]) through the model in eval mode, keeping residuals (and attentions)."""
    device = model_device(model)
    ids = input_ids.reshape(1, -1) if input_ids.dim() == 1 else input_ids
    mask = None if attention_mask is None else attention_mask.reshape(ids.shape).to(device)
    layers = decoder_layers(model)
    residuals: list[torch.Tensor | None] = [None] * len(layers)

    def keep(i: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            residuals[i] = hidden.detach().float().cpu()
        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        with eager_attention(model) if attentions else nullcontext():
            out = model(input_ids=ids.to(device), attention_mask=mask, output_attentions=attentions,
                        use_cache=False)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if any(r is None for r in residuals):
        raise RuntimeError("a decoder layer did not run in the forward pass")
    probs = None
    if attentions:
        probs = [a.detach().float() for a in out.attentions]
        if len(probs) != len(layers) or any(p is None for p in probs):
            raise RuntimeError("the model returned no attention probabilities for some layer")
    return Pass(residuals, probs)  # type: ignore[arg-type]


__all__ = ["Pass", "decoder_layers", "forward_pass", "model_device"]
