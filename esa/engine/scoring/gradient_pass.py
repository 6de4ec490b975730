"""The gradient sweep of Phase-2 scoring, and the model state every scoring pass runs in.

One fwd+bwd sweep in microbatches fills the accumulators of grad_x_weight, grad_squared, obd and act_mag together;
each parameter's gradient is folded into its accumulators by a post-accumulate hook that drops ``.grad`` at once.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm import tqdm

from esa.engine.data.batches import Batch, Params, batch_loss, make_batches, model_device
from esa.engine.models.placement import home_device, offload_entry, watch_materialised
from esa.engine.scoring.metrics import fold_, get_metric

HOST = torch.device("cpu")


@contextmanager
def scoring_mode(model, params: Params, *, deterministic: bool):
    """Eval mode, gradients only for the scored parameters, deterministic kernels on CPU; all restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    det = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    for _, p in params:
        p.requires_grad_(True)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        torch.use_deterministic_algorithms(det[0], warn_only=det[1])


@contextmanager
def eager_attention(model):
    """Double backward through SDPA/flash kernels is not implemented: switch to eager attention, then back."""
    config = model.config
    old = getattr(config, "_attn_implementation", None)
    if old in (None, "eager"):
        yield "eager" if old == "eager" else "default"
        return

    def set_impl(name):
        try:
            model.set_attn_implementation(name)
        except (AttributeError, ValueError, ImportError):
            config._attn_implementation = name

    set_impl("eager")
    try:
        yield "eager"
    finally:
        set_impl(old)


def linear_owners(model) -> dict[int, torch.nn.Linear]:
    """id(weight) -> the nn.Linear using it (a tied lm_head/embedding weight maps to lm_head)."""
    return {id(m.weight): m for m in model.modules() if isinstance(m, torch.nn.Linear)}



@dataclass
class GradientStats:
    n_tokens: int = 0
    n_sequences: int = 0
    n_batches: int = 0
    n_positions: int = 0


def gradient_pass(model, params: Params, batches: list[Batch], *, need: frozenset[str], accum_dtype: torch.dtype,
                  device: torch.device, progress: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]],
                                                                         GradientStats]:
    """One sweep filling the requested accumulators (grad_sum, grad_sq, act_sq) of every parameter.

    Accumulators live on the device holding their parameter (the host for weights accelerate offloads), so a model
    split by a device_map never gathers a gradient on one device. An offloaded weight is a new object in every
    forward: its hook is put on that object as accelerate materialises it (esa.engine.models.placement).
    """
    acc: dict[str, dict[str, torch.Tensor]] = {name: {} for name, _ in params}
    for name, p in params:
        for key in ("grad_sum", "grad_sq"):
            if key in need:
                acc[name][key] = torch.zeros(p.shape, dtype=accum_dtype, device=home_device(p))
    offloaded = {name: entry for name, p in params if (entry := offload_entry(p)) is not None}
    stats = GradientStats()
    current: dict = {"n": 0, "mask": None}
    handles = []

    def grad_hook(name: str):
        def hook(p: torch.nn.Parameter) -> None:
            g, p.grad = p.grad, None
            if g is None:
                return
            a = acc[name]
            if name in offloaded:  # materialised on the execution device, accumulated on the host
                g = g.to(HOST)
            if "grad_sum" in a:
                fold_(a["grad_sum"], g, alpha=float(current["n"]))
            if "grad_sq" in a:
                fold_(a["grad_sq"], g, g)
        return hook

    def act_hook(name: str):
        def hook(module, inputs, output) -> None:
            x = inputs[0].detach()
            x = x.reshape(-1, x.shape[-1]).float()
            if current["mask"] is not None:
                x = x[current["mask"].reshape(-1).bool()]
            total = acc[name]["act_sq"]
            total.add_(torch.square(x).sum(0).to(total.device))
        return hook

    def materialised(name: str, weight: torch.nn.Parameter) -> None:
        weight.requires_grad_(True)  # accelerate copies the flag from the meta object, which may predate the pass
        weight.register_post_accumulate_grad_hook(grad_hook(name))  # dies with this forward's weight

    backward = bool(need & {"grad_sum", "grad_sq"})
    if backward:
        handles += [p.register_post_accumulate_grad_hook(grad_hook(name)) for name, p in params if name not in offloaded]
    if "act_sq" in need:
        owners = linear_owners(model)
        for name, p in params:
            module = owners.get(id(p))
            if name in offloaded and isinstance(offloaded[name][0], torch.nn.Linear):
                module = offloaded[name][0]
            if module is not None and p.dim() == 2:
                acc[name]["act_sq"] = torch.zeros(p.shape[1], dtype=torch.float32, device=home_device(p))
                handles.append(module.register_forward_hook(act_hook(name)))
    saved = [p.grad for _, p in params]
    for _, p in params:
        p.grad = None
    try:
        with watch_materialised(offloaded if backward else {}, materialised):
            for batch in tqdm(batches, desc="score: gradient" if backward else "score: activations",
                              disable=not progress, mininterval=2.0):
                current["n"] = batch.n_tokens
                current["mask"] = None if batch.mask is None else batch.mask.to(device)
                if backward:
                    batch_loss(model, batch, device).backward()
                else:
                    with torch.no_grad():
                        model(input_ids=batch.ids.to(device), attention_mask=current["mask"], use_cache=False)
                stats.n_tokens += batch.n_tokens
                stats.n_sequences += batch.n_sequences
                stats.n_positions += batch.n_positions
                stats.n_batches += 1
    finally:
        for handle in handles:
            handle.remove()
        for (_, p), grad in zip(params, saved):
            p.grad = grad
    return acc, stats


def bare_fwd_bwd(model, windows: list[torch.Tensor], *, params: Params | None = None, microbatch: int = 1,
                 pad_id: int = 0, progress: bool = False) -> int:
    """The reference loop for benchmarks: the same microbatches and loss, nothing but ``loss.backward()``.

    Gradients of ``params`` (default: those already requiring grad) accumulate in ``.grad`` as usual and are
    dropped at the end. Returns the number of predicted tokens.
    """
    device = model_device(model)
    batches = make_batches(windows, microbatch, pad_id)
    chosen = params if params is not None else [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    with scoring_mode(model, chosen, deterministic=False):
        for batch in tqdm(batches, desc="bare fwd+bwd", disable=not progress, mininterval=2.0):
            batch_loss(model, batch, device).backward()
        for _, p in chosen:
            p.grad = None
    return sum(b.n_tokens for b in batches)


def act_mag_notes(model, params: Params, acc: dict[str, dict[str, torch.Tensor]]) -> dict[str, str]:
    """Why a parameter has no act_mag score, or which use of a tied weight its score reflects."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    notes = {}
    for name, p in params:
        if "act_sq" not in acc[name]:
            notes[name] = get_metric("act_mag").skip_note
        elif id(p) in embedded:
            notes[name] = "tied with an embedding: scored with the inputs of its nn.Linear (lm_head) only"
    return notes
