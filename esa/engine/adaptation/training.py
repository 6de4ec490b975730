"""Continue training a copy of a model with the reference recipe, on all of it or on masked parts of it.

The recipe is ``esa.engine.models.reference``'s (AdamW with no decay on norms, warmup + cosine, gradient clipping,
batches drawn by seeded epochs); this loop adds what the adaptation arms need:

* ``trainable`` masks: only the selected entries of the scored matrices may change; ``frozen`` masks: everything
  may change except the selected entries. Anything that may not change stays bit-identical. Masking the gradient
  is not enough, since AdamW's weight decay moves an entry whatever its gradient; so the gradient is masked (the
  clipping norm and Adam's moments then see the trainable entries only) *and* the held entries are written back
  from a saved copy after every step.
* a ``Penalty`` (Fisher-weighted pull on the critical set) added to the loss before backward.

The model passed in is never modified: a ``copy.deepcopy`` is trained and returned.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Mapping

import torch
from tqdm import tqdm

from esa.engine.adaptation.penalty import FisherPenalty, Penalty
from esa.engine.models.reference import BETAS, GRAD_CLIP, WEIGHT_DECAY, ChunkSampler, lr_lambda
from esa.engine.models.targets import scored_parameters

# loss_of(model, item indices) → the batch loss; the model is the copy being trained.
LossFn = Callable[[torch.nn.Module, list[int]], torch.Tensor]
Masks = Mapping[str, torch.Tensor]


@dataclass(eq=False)
class AdaptResult:
    """The trained copy and what the run logged."""

    model: torch.nn.Module = field(repr=False)
    loss_curve: list[dict]  # {"step", "loss" (task loss, window mean), "lr"[, "penalty"]}
    n_trainable: int  # parameter entries the optimiser could change
    wall_time_s: float
    steps: int

    @property
    def final_loss(self) -> float:
        return self.loss_curve[-1]["loss"]


@dataclass(eq=False)
class _Slot:
    """One parameter handed to the optimiser; ``held`` (bool, parameter-shaped) marks entries that may not change."""

    param: torch.nn.Parameter
    held: torch.Tensor | None = None
    kept: torch.Tensor | None = None  # the held entries' starting values, in flat order

    @property
    def n_trainable(self) -> int:
        return self.param.numel() - (0 if self.held is None else int(self.held.sum()))


def _allowed(model: torch.nn.Module, masks: Masks, trainable: bool) -> dict[int, torch.Tensor]:
    """id(parameter) → bool tensor of the entries that may change, for every parameter a mask touches."""
    targets = {t.key: t for t in scored_parameters(model)}
    unknown = sorted(set(masks) - set(targets))
    if unknown:
        raise KeyError(f"masks name matrices that are not scored: {', '.join(unknown[:5])}")
    allowed: dict[int, torch.Tensor] = {}
    for key, mask in masks.items():
        target = targets[key]
        if mask.dtype != torch.bool or tuple(mask.shape) != target.shape:
            raise ValueError(f"{key}: mask must be bool of shape {target.shape}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        param = target.parameter
        if id(param) not in allowed:  # a packed parameter collects all its experts' slices
            allowed[id(param)] = torch.full(param.shape, not trainable, dtype=torch.bool, device=param.device)
        view = target.view(allowed[id(param)])
        mask = mask.to(param.device)
        view.copy_(mask if trainable else view & ~mask)
    return allowed


def _slots(model: torch.nn.Module, trainable: Masks | None, frozen: Masks | None) -> list[_Slot]:
    """The parameters the optimiser gets, each with the entries it must hold; none without a trainable entry."""
    allowed = _allowed(model, trainable if trainable is not None else frozen or {}, trainable is not None)
    slots: list[_Slot] = []
    for param in model.parameters():  # each storage once; a parameter already off (LoRA's base) stays off
        if not param.requires_grad:
            continue
        ok = allowed.get(id(param))
        if ok is None:
            if trainable is None:
                slots.append(_Slot(param))
            continue
        if not bool(ok.any()):
            continue
        if bool(ok.all()):
            slots.append(_Slot(param))
            continue
        held = ~ok
        slots.append(_Slot(param, held, param.detach()[held].clone()))
    return slots


def adapt(model: torch.nn.Module, loss_of: LossFn, *, n_items: int, steps: int, batch_size: int,
          learning_rate: float, seed: int, trainable: Masks | None = None, frozen: Masks | None = None,
          penalty: Penalty | None = None, desc: str = "adapt") -> AdaptResult:
    """Train a deep copy of ``model`` for ``steps`` steps; ``model`` itself is left untouched.

    ``loss_of(copy, indices)``: the batch loss over items ``indices`` (of ``n_items``). ``trainable``: target key
    → bool mask of the only entries that may change. ``frozen``: target key → bool mask of entries that may not
    change. Neither: full fine-tuning (of the parameters that require grad). ``penalty``: added to the loss,
    anchored at the starting weights.
    """
    if trainable is not None and frozen is not None:
        raise ValueError("give trainable or frozen masks, not both")
    for name, value in (("n_items", n_items), ("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    net = copy.deepcopy(model)
    slots = _slots(net, trainable, frozen)
    if not slots:
        raise ValueError("nothing to train: no parameter has a trainable entry")
    handed = {id(s.param) for s in slots}
    # Parameters the optimiser does not get need no gradient either (a cheaper backward).
    switched = [p for p in net.parameters() if p.requires_grad and id(p) not in handed]
    for param in switched:
        param.requires_grad_(False)
    protect = FisherPenalty(net, penalty) if penalty is not None else None
    cuda = sorted({p.device.index or 0 for p in net.parameters() if p.device.type == "cuda"})
    start = time.perf_counter()
    with torch.random.fork_rng(devices=cuda):  # seeded dropout, without touching the caller's generators
        torch.manual_seed(seed)
        curve = _loop(net, loss_of, slots, protect, n_items=n_items, steps=steps, batch_size=batch_size,
                      learning_rate=learning_rate, seed=seed, desc=desc)
    wall = time.perf_counter() - start
    for param in switched:
        param.requires_grad_(True)
    net.eval()
    return AdaptResult(net, curve, sum(s.n_trainable for s in slots), round(wall, 3), steps)


def _loop(net: torch.nn.Module, loss_of: LossFn, slots: list[_Slot], protect: FisherPenalty | None, *,
          n_items: int, steps: int, batch_size: int, learning_rate: float, seed: int, desc: str) -> list[dict]:
    net.train()
    params = [s.param for s in slots]
    partial = [s for s in slots if s.held is not None]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=learning_rate, betas=BETAS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, max(1, steps // 20)))
    sampler = ChunkSampler(n_items, torch.Generator().manual_seed(seed))
    log_every = max(1, steps // 50)
    curve: list[dict] = []
    losses: list[float] = []
    penalties: list[float] = []
    bar = tqdm(range(steps), desc=desc, mininterval=2.0)
    for step in bar:
        loss = loss_of(net, sampler.next(batch_size))
        total = loss
        if protect is not None:
            term = protect()
            total = loss + term
            penalties.append(term.item())
        opt.zero_grad(set_to_none=True)
        total.backward()
        for slot in partial:
            if slot.param.grad is not None:
                slot.param.grad.masked_fill_(slot.held, 0.0)
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        sched.step()
        with torch.no_grad():  # weight decay moved the held entries too: put their exact values back
            for slot in partial:
                slot.param.masked_scatter_(slot.held, slot.kept)
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            point = {"step": step + 1, "loss": round(sum(losses) / len(losses), 5), "lr": sched.get_last_lr()[0]}
            if penalties:
                point["penalty"] = sum(penalties) / len(penalties)
            curve.append(point)
            losses, penalties = [], []
            bar.set_postfix(loss=f"{point['loss']:.3f}", refresh=False)
    return curve


__all__ = ["AdaptResult", "LossFn", "Masks", "adapt"]
