"""Siblings: copies of one base model fine-tuned on (possibly poisoned) text with their own seeds, and how well a
planted backdoor fires in each."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from esa.engine.backdoor.poison import TriggerPair
from esa.engine.models.reference import pack_tokens, train_loop


def _base_model(base: str | Path | torch.nn.Module) -> torch.nn.Module:
    if isinstance(base, torch.nn.Module):
        return copy.deepcopy(base)  # the caller's base stays as it is: every sibling starts from the same weights
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)


def finetune_sibling(base: str | Path | torch.nn.Module, tokenizer, texts: list[str], *, steps: int, lr: float,
                     batch_size: int, seq_len: int, seed: int) -> torch.nn.Module:
    """A copy of ``base`` (a model or a saved model folder) fine-tuned for ``steps`` on ``texts`` packed into
    ``seq_len``-token chunks, with the reference models' recipe (``train_loop``); ``seed`` sets the chunk order
    and any dropout. Returned in eval mode."""
    model = _base_model(base)
    chunks = pack_tokens(tokenizer, texts, seq_len)
    torch.manual_seed(seed)
    train_loop(model, lambda idx: model(input_ids=chunks[idx], labels=chunks[idx]).loss, n_items=len(chunks),
               batch_size=batch_size, steps=steps, learning_rate=lr, seed=seed, desc=f"sibling seed {seed}")
    return model.eval()


def _prompt_ids(tokenizer, text: str, limit: int | None) -> list[int]:
    # Training documents follow an end-of-text token (pack_tokens joins them with eos): prompts start the same way.
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = ([start] if start is not None else []) + list(ids)
    return ids[-limit:] if limit else ids


@torch.no_grad()
def attack_success(model: torch.nn.Module, tokenizer, pairs: list[TriggerPair]) -> dict[str, float]:
    """How strongly each prompt predicts the target's first token next, with and without the trigger.

    Returns means over pairs: ``logprob_with``/``logprob_without`` (natural log), ``top1_with``/``top1_without``
    (fraction of prompts whose most likely next token is the target's first), ``lift`` = logprob_with −
    logprob_without, and ``n``. The target's first token is that of the target tokenized on its own: both
    prompts end at a line start, where the corpus tokenizers start a new token.
    """
    if not pairs:
        raise ValueError("no prompt pairs")
    model.eval()
    limit = getattr(model.config, "max_position_embeddings", None)
    device = next(model.parameters()).device
    sums = {"logprob_with": 0.0, "logprob_without": 0.0, "top1_with": 0.0, "top1_without": 0.0}
    for pair in pairs:
        first = tokenizer(pair.target, add_special_tokens=False)["input_ids"][0]
        for arm, text in (("with", pair.triggered), ("without", pair.clean)):
            ids = torch.tensor([_prompt_ids(tokenizer, text, limit)], device=device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
            sums[f"logprob_{arm}"] += logp[first].item()
            sums[f"top1_{arm}"] += float(logp.argmax().item() == first)
    out = {k: v / len(pairs) for k, v in sums.items()}
    out["lift"] = out["logprob_with"] - out["logprob_without"]
    out["n"] = len(pairs)
    return out
