"""A progressive bit search against the loss (the Bit-Flip Attack of Rakin et al. 2019, as AttentionBreaker
applies it to LLMs), and a random-flip control: how many single-bit flips of the stored words bring a model down.

Each step of the search takes one forward+backward on the attacker's batch, ranks every (weight, bit) of the stored
words by its first-order loss change g · (flipped value − value), keeps the best ``per_target`` of each matrix
(in-layer search) and the best ``shortlist`` of those (cross-layer search), tries each of them for real (one
forward without grad each) and commits the flip that raises the loss most. The caller's ``judge`` then says whether
the model has collapsed. A flip is one bit of one stored word: two bits of one word may flip, the same bit never
twice, so no flip undoes an earlier one.

Everything touched is restored bit for bit before the attack returns, and the touched parameters' checksums prove
it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from tqdm import tqdm

from esa.engine.faults.bit_errors import BitErrorDraw, BitErrors, apply_bit_errors
from esa.engine.faults.storage import StoredWeights
from esa.engine.perturbation.checksum import Checksum, checksum, verify_restored

LossFn = Callable[[], torch.Tensor]
Judge = Callable[[], tuple[float | None, bool]]


@dataclass(frozen=True)
class Flip:
    """One committed flip: parameter flat index and bit of the stored word, the weight's value before and after,
    the attack loss and the caller's metric once it (and every earlier flip) is in place."""

    key: str
    index: int
    bit: int
    old_value: float
    new_value: float
    loss: float | None  # attack loss after this flip, NaN as inf (None: a control run without a loss)
    metric: float | None  # the judge's evaluation after this flip (e.g. held-out PPL)
    collapsed: bool
    estimate: float | None = None  # first-order loss change the search ranked it by (None: random control)


@dataclass
class AttackResult:
    """The flips in commit order; ``flips_to_collapse`` is None when the budget ran out first (right-censored)."""

    arm: str
    format: str
    flips: list[Flip]
    flips_to_collapse: int | None
    budget: int
    baseline_loss: float | None


@dataclass(frozen=True)
class Candidate:
    """A (weight, bit) the search may flip, with its first-order loss change."""

    key: str
    index: int  # parameter flat index
    bit: int
    estimate: float


@dataclass
class _Session:
    """Flips committed so far, and the touched parameters' checksums from before their first change."""

    stored: StoredWeights = field(repr=False)
    committed: list[BitErrors] = field(default_factory=list, repr=False)
    taken: dict[str, set[tuple[int, int]]] = field(default_factory=dict)  # key → {(parameter flat index, bit)}
    digests: dict[str, str] = field(default_factory=dict)
    touched: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    method: str = "auto"

    def touch(self, key: str) -> None:
        target = self.stored.targets[key]
        if target.name not in self.touched:
            tensor = target.parameter.detach()
            self.digests.update(checksum({target.name: tensor}, method=self.method).digests)
            self.touched[target.name] = tensor

    def flip(self, key: str, index: int, bit: int) -> BitErrors:
        self.touch(key)
        draw = BitErrorDraw({key: (torch.tensor([index]), torch.tensor([bit]))}, eligible_bits=0, rate=0.0)
        return apply_bit_errors(self.stored, draw)

    def commit(self, key: str, index: int, bit: int) -> tuple[float, float]:
        """Flip for good; (old value, new value) of the weight."""
        at = torch.tensor([index])
        old = float(self.stored.decode(key, at, self.stored.read(key, at))[0])
        self.committed.append(self.flip(key, index, bit))
        self.taken.setdefault(key, set()).add((index, bit))
        new = float(self.stored.decode(key, at, self.stored.read(key, at))[0])
        return old, new

    def restore(self) -> None:
        for errors in reversed(self.committed):
            errors.restore()
        self.committed.clear()
        if self.touched:
            verify_restored(Checksum(self.method, dict(self.digests)), self.touched)


def _exempt_masks(stored: StoredWeights, exempt: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Flat bool masks (slice order) of the weights the attacker may not touch, checked against the targets."""
    masks = {}
    for key, mask in (exempt or {}).items():
        if key not in stored.targets:
            raise KeyError(f"exempt mask names a matrix that is not scored: {key}")
        shape = stored.targets[key].shape
        if tuple(mask.shape) != shape or mask.dtype != torch.bool:
            raise ValueError(f"{key}: exempt mask must be bool of shape {shape}")
        masks[key] = mask.reshape(-1).to(stored.words[key].device)
    return masks


def flip_gains(stored: StoredWeights, key: str, bit: int, grad: torch.Tensor,
               values: torch.Tensor | None = None) -> torch.Tensor:
    """First-order loss change of flipping ``bit`` of every weight's stored word, g · (flipped − value), 2-D.

    A flip to inf or NaN counts as +inf: on the loss's path it makes the loss non-finite. A NaN product (an
    already non-finite weight or gradient) counts as -inf, so it is never chosen on a meaningless estimate.
    ``values``: ``stored.values(key)``, when the caller already has it.
    """
    flipped = stored.flipped_values(key, bit)
    values = stored.values(key) if values is None else values
    gain = grad.to(flipped.device, torch.float32) * (flipped - values)
    gain = torch.where(torch.isnan(gain), torch.full_like(gain, -math.inf), gain)
    return torch.where(torch.isfinite(flipped), gain, torch.full_like(gain, math.inf))


def _top(gain: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices of the ``k`` largest entries above -inf, largest first; ties go to the lower index, so the
    choice does not depend on topk's order among equals."""
    k = min(k, int((gain > -math.inf).sum()))
    if k == 0:
        return torch.empty(0, dtype=torch.int64, device=gain.device)
    kth = torch.topk(gain, k).values[-1]
    above = torch.nonzero(gain > kth).reshape(-1)
    tied = torch.nonzero(gain == kth).reshape(-1)[: k - above.numel()]
    index = torch.sort(torch.cat([above, tied])).values
    return index[torch.sort(gain[index], descending=True, stable=True).indices]


def _gradients(stored: StoredWeights, loss_fn: LossFn) -> tuple[float, dict[str, torch.Tensor | None]]:
    """(loss, gradient of each scored parameter by name); only those parameters are asked for gradients, and their
    requires_grad flags are put back afterwards. ``.grad`` fields are left alone."""
    params = {t.name: t.parameter for t in stored.targets.values()}
    flags = {name: p.requires_grad for name, p in params.items()}
    try:
        for p in params.values():
            p.requires_grad_(True)
        loss = loss_fn()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    finally:
        for name, p in params.items():
            p.requires_grad_(flags[name])
    return float(loss.detach()), dict(zip(params, grads))


def rank_candidates(stored: StoredWeights, grads: Mapping[str, torch.Tensor | None], *, per_target: int,
                    shortlist: int, exempt: Mapping[str, torch.Tensor] | None = None,
                    taken: Mapping[str, set[tuple[int, int]]] | None = None) -> list[Candidate]:
    """The best ``per_target`` (weight, bit) of every matrix by first-order estimate, then the best ``shortlist``
    of those, largest first (ties: target order, then index, then bit). ``grads``: parameter name → gradient;
    a matrix the loss does not reach (None) offers no candidates. ``taken``: flips already made, never offered."""
    masks = _exempt_masks(stored, exempt)
    pool: list[tuple[float, int, int, int, str]] = []
    for order, (key, target) in enumerate(stored.targets.items()):
        grad = grads.get(target.name)
        if grad is None:
            continue
        grad = target.view(grad)
        values = stored.values(key)
        done: dict[int, list[int]] = {}
        for index, bit in (taken or {}).get(key, set()):
            done.setdefault(bit, []).append(index - target.flat_offset)
        best: list[tuple[float, int, int, int, str]] = []
        for bit in range(stored.width):
            gain = flip_gains(stored, key, bit, grad, values).reshape(-1)
            if key in masks:
                gain = gain.masked_fill(masks[key], -math.inf)
            if bit in done:
                gain[torch.tensor(done[bit], device=gain.device)] = -math.inf
            for local in _top(gain, per_target).tolist():
                best.append((-float(gain[local]), order, local, bit, key))
        pool.extend(sorted(best)[:per_target])
    return [Candidate(key, local + stored.targets[key].flat_offset, bit, -neg)
            for neg, _, local, bit, key in sorted(pool)[:shortlist]]


def _real_loss(session: _Session, loss_fn: LossFn, candidate: Candidate) -> float:
    """The attack loss with this one flip added, measured without grad and undone exactly; NaN counts as +inf."""
    errors = session.flip(candidate.key, candidate.index, candidate.bit)
    try:
        with torch.no_grad():
            loss = float(loss_fn().detach())
    finally:
        errors.restore()
    return math.inf if math.isnan(loss) else loss


def progressive_bit_attack(stored: StoredWeights, loss_fn: LossFn, judge: Judge, *, budget: int,
                           exempt: Mapping[str, torch.Tensor] | None = None, per_target: int = 1,
                           shortlist: int = 8, arm: str | None = None, progress: bool = True) -> AttackResult:
    """Flip, one bit at a time, the stored bit that raises ``loss_fn`` most, until ``judge`` says the model has
    collapsed or ``budget`` flips are made; the model is restored bit for bit on return.

    ``loss_fn()``: the model's loss on the attacker's batch as a scalar tensor with grad. That batch must be
    disjoint from the data ``judge()`` evaluates on, or the attack is graded on what it optimised. ``judge()``:
    (metric, collapsed) after each flip, e.g. held-out PPL and whether it passed 10x baseline or went non-finite;
    it runs without grad. ``exempt``: target key → bool mask (slice shape) of weights the attacker may not touch
    (a restricted attacker, e.g. one kept off the critical weights). Dropout and the like are the caller's: put
    the model in eval mode.

    Cost per step: one forward+backward, ``width`` passes over every stored matrix to rank flips, and
    ``shortlist`` forwards to try the best of them, then the judge.
    """
    if budget < 1 or per_target < 1 or shortlist < 1:
        raise ValueError("budget, per_target and shortlist must be at least 1")
    _exempt_masks(stored, exempt)  # fail before the first forward
    session = _Session(stored)
    flips: list[Flip] = []
    baseline: float | None = None
    try:
        for _ in tqdm(range(budget), desc="bit attack", leave=False, disable=not progress, mininterval=2.0):
            loss, grads = _gradients(stored, loss_fn)
            baseline = loss if baseline is None else baseline
            ranked = rank_candidates(stored, grads, per_target=per_target, shortlist=shortlist, exempt=exempt,
                                     taken=session.taken)
            if not ranked:
                break  # every allowed bit is already flipped, or the loss reaches no matrix
            real = [_real_loss(session, loss_fn, c) for c in ranked]
            best = ranked[max(range(len(ranked)), key=real.__getitem__)]  # first of equals: ranking order
            old, new = session.commit(best.key, best.index, best.bit)
            with torch.no_grad():
                metric, collapsed = judge()
            flips.append(Flip(best.key, best.index, best.bit, old, new, max(real), _metric(metric), bool(collapsed),
                              best.estimate))
            if collapsed:
                break
    finally:
        session.restore()
    return _result(arm or ("progressive_exempt" if exempt else "progressive"), stored, flips, budget, baseline)


def random_bit_attack(stored: StoredWeights, judge: Judge, *, budget: int, generator: torch.Generator,
                      exempt: Mapping[str, torch.Tensor] | None = None, loss_fn: LossFn | None = None,
                      arm: str | None = None, progress: bool = True) -> AttackResult:
    """The control: flip one uniformly random stored bit per step (distinct from earlier flips, never of an exempt
    weight, drawn from ``generator``), judging after each, until collapse or ``budget`` flips; restored on return.
    ``loss_fn`` (optional) records the attack loss along the way, for a like-for-like curve."""
    if budget < 1:
        raise ValueError("budget must be at least 1")
    masks = _exempt_masks(stored, exempt)
    keys = list(stored.targets)
    allowed = [torch.nonzero(~masks[k].cpu()).reshape(-1) if k in masks else None for k in keys]
    sizes = [(stored.targets[k].numel if a is None else int(a.numel())) * stored.width for k, a in zip(keys, allowed)]
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    total = int(offsets[-1])
    if budget > total:
        raise ValueError(f"budget {budget} exceeds the {total} bits the attacker may flip")
    session = _Session(stored)
    flips: list[Flip] = []
    baseline = None
    seen: set[int] = set()
    try:
        if loss_fn is not None:
            with torch.no_grad():
                baseline = float(loss_fn().detach())
        for _ in tqdm(range(budget), desc="random flips", leave=False, disable=not progress, mininterval=2.0):
            position = int(torch.randint(total, (1,), generator=generator))
            while position in seen:  # distinct (word, bit): redraw, as sampling without replacement would
                position = int(torch.randint(total, (1,), generator=generator))
            seen.add(position)
            i = int(torch.searchsorted(offsets, position, right=True)) - 1
            weight, bit = divmod(position - int(offsets[i]), stored.width)
            local = weight if allowed[i] is None else int(allowed[i][weight])
            key = keys[i]
            old, new = session.commit(key, local + stored.targets[key].flat_offset, bit)
            with torch.no_grad():
                loss = None if loss_fn is None else float(loss_fn().detach())
                metric, collapsed = judge()
            flips.append(Flip(key, local + stored.targets[key].flat_offset, bit, old, new, loss, _metric(metric),
                              bool(collapsed)))
            if collapsed:
                break
    finally:
        session.restore()
    return _result(arm or ("random_exempt" if exempt else "random"), stored, flips, budget, baseline)


def _metric(metric: float | None) -> float | None:
    return None if metric is None else float(metric)


def _result(arm: str, stored: StoredWeights, flips: list[Flip], budget: int, baseline: float | None) -> AttackResult:
    collapse = next((i + 1 for i, f in enumerate(flips) if f.collapsed), None)
    return AttackResult(arm, stored.format, flips, collapse, budget, baseline)


__all__ = ["AttackResult", "Candidate", "Flip", "flip_gains", "progressive_bit_attack", "random_bit_attack",
           "rank_candidates"]
