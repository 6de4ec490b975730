"""The Phase-2 scoring passes: every requested metric from as few sweeps over the calibration windows as possible.

- gradient pass: one fwd+bwd sweep in microbatches (default one sequence each, so per-sequence gradients are
  exact) fills the accumulators of grad_x_weight, grad_squared, obd and act_mag together. Each parameter's
  gradient is folded into its accumulators by a post-accumulate hook that drops ``.grad`` at once: no full
  gradient buffer is ever held. With act_mag alone the sweep is forward-only.
- hutchinson pass: its own sweep per probe (double backward, eager attention).
- superweight: one forward pass on a short prompt. magnitude: no pass.

Scores are computed from the accumulators and the current weights, in chunks, when asked for (see ScoreResult).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from esa.engine.hutchinson import hutchinson_sums
from esa.engine.metrics import HUTCHINSON_REPORT, ScoreInputs, check_hutchinson_mode, fold_, get_metric
from esa.engine.superweight import DEFAULT_THRESHOLD, detect_superweights, superweight_scores
from esa.engine.windows import make_windows, sample_windows, tokenize_docs

Params = list[tuple[str, torch.nn.Parameter]]


# ----------------------------------------------------------------------------------------------------------------
# Calibration windows and microbatches


def calibration_windows(tokenizer, docs: list[dict], *, context: int, max_windows: int,
                        seed: int) -> list[torch.Tensor]:
    """A seeded sample of windows of up to ``context`` tokens, one token-id tensor each.

    Windows start every ``context - 1`` tokens, so consecutive windows share one token and every token of a
    document but its first is predicted exactly once over all windows.
    """
    tokenized = tokenize_docs(tokenizer, docs)
    windows = sample_windows(make_windows(tokenized, context, context - 1), max_windows, seed)
    return [torch.tensor(tokenized[w.doc].ids[w.start: w.end], dtype=torch.long) for w in windows]


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor  # (B, T), right-padded
    mask: torch.Tensor | None  # (B, T) 1 = real token; None when nothing is padded
    n_sequences: int
    n_positions: int  # non-padding positions
    n_tokens: int  # predicted tokens (each sequence predicts all its tokens but the first)


def make_batches(windows: list[torch.Tensor], microbatch: int = 1, pad_id: int = 0) -> list[Batch]:
    if microbatch < 1:
        raise ValueError(f"microbatch must be >= 1, got {microbatch}")
    seqs = [w.reshape(-1).long() for w in windows]
    short = [i for i, s in enumerate(seqs) if s.numel() < 2]
    if short:
        raise ValueError(f"windows {short[:5]} have fewer than 2 tokens: nothing to predict")
    batches = []
    for lo in range(0, len(seqs), microbatch):
        chunk = seqs[lo: lo + microbatch]
        width = max(s.numel() for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, s in enumerate(chunk):
            ids[row, : s.numel()] = s
            mask[row, : s.numel()] = 1
        n_pos = int(mask.sum())
        padded = n_pos < mask.numel()
        batches.append(Batch(ids, mask if padded else None, len(chunk), n_pos, n_pos - len(chunk)))
    return batches


def batch_loss(model, batch: Batch, device: torch.device) -> torch.Tensor:
    """Mean NLL (in float32, or the model's dtype when wider) over the batch's predicted tokens."""
    ids = batch.ids.to(device)
    mask = None if batch.mask is None else batch.mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    targets = ids[:, 1:]
    if mask is not None:
        targets = targets.masked_fill(mask[:, 1:] == 0, -100)
    logits = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))  # at least fp32
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          ignore_index=-100, reduction="sum")
    return nll / batch.n_tokens


# ----------------------------------------------------------------------------------------------------------------
# Model state for a pass


def model_device(model) -> torch.device:
    return next(model.parameters()).device


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


# ----------------------------------------------------------------------------------------------------------------
# Passes


@dataclass
class GradientStats:
    n_tokens: int = 0
    n_sequences: int = 0
    n_batches: int = 0
    n_positions: int = 0


def gradient_pass(model, params: Params, batches: list[Batch], *, need: frozenset[str], accum_dtype: torch.dtype,
                  device: torch.device, progress: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]],
                                                                         GradientStats]:
    """One sweep filling the requested accumulators (grad_sum, grad_sq, act_sq) of every parameter."""
    acc: dict[str, dict[str, torch.Tensor]] = {name: {} for name, _ in params}
    for name, p in params:
        for key in ("grad_sum", "grad_sq"):
            if key in need:
                acc[name][key] = torch.zeros(p.shape, dtype=accum_dtype, device=p.device)
    stats = GradientStats()
    current: dict = {"n": 0, "mask": None}
    handles = []

    def grad_hook(name: str):
        def hook(p: torch.nn.Parameter) -> None:
            g, p.grad = p.grad, None
            if g is None:
                return
            a = acc[name]
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
            acc[name]["act_sq"].add_(torch.square(x).sum(0))
        return hook

    backward = bool(need & {"grad_sum", "grad_sq"})
    if backward:
        handles += [p.register_post_accumulate_grad_hook(grad_hook(name)) for name, p in params]
    if "act_sq" in need:
        owners = linear_owners(model)
        for name, p in params:
            module = owners.get(id(p))
            if module is not None and p.dim() == 2:
                acc[name]["act_sq"] = torch.zeros(p.shape[1], dtype=torch.float32, device=p.device)
                handles.append(module.register_forward_hook(act_hook(name)))
    saved = [p.grad for _, p in params]
    for _, p in params:
        p.grad = None
    try:
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


# ----------------------------------------------------------------------------------------------------------------
# Result


@dataclass
class ScoreMeta:
    metrics: list[str]
    n_params: int  # parameter tensors scored
    n_weights: int  # elements scored
    dtype: str  # the model's parameter dtype during scoring
    device: str
    accum_dtype: str
    score_dtype: str
    seed: int
    microbatch: int
    n_tokens: int = 0  # predicted tokens in the gradient/activation sweep
    n_sequences: int = 0
    n_microbatches: int = 0
    n_input_positions: int = 0  # non-padding positions seen by the act_mag hooks
    estimators: dict[str, str] = field(default_factory=dict)
    passes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # metric -> parameter -> why no score
    hutchinson: dict | None = None
    superweight: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreResult:
    """Per-metric, per-parameter scores (same shape as the parameter, larger = more sensitive).

    Lazy results compute each score on request from the accumulators and the weights as they are then: read them
    before modifying the model. ``materialize()`` computes everything and frees the accumulators.
    """

    meta: ScoreMeta
    names: list[str]
    params: dict[str, torch.nn.Parameter]
    acc: dict[str, dict[str, torch.Tensor]]
    n_probes: int = 0
    hutchinson_mode: str = "obd"
    score_dtype: torch.dtype = torch.float32
    cache: dict[str, dict[str, torch.Tensor | None]] = field(default_factory=dict)

    def score(self, metric: str, name: str) -> torch.Tensor | None:
        if metric in self.cache:
            return self.cache[metric][name]
        if metric not in self.meta.metrics:
            raise KeyError(f"metric '{metric}' was not scored (scored: {', '.join(self.meta.metrics)})")
        stats = ScoreInputs(weight=self.params[name].detach(), acc=self.acc.get(name, {}),
                            n_tokens=self.meta.n_tokens, n_batches=self.meta.n_microbatches,
                            n_probes=self.n_probes, hutchinson_mode=self.hutchinson_mode, out_dtype=self.score_dtype)
        with torch.no_grad():
            return get_metric(metric).compute(stats)

    def iter_scores(self, metric: str) -> Iterator[tuple[str, torch.Tensor | None]]:
        """One parameter at a time, so a consumer (top-k) never needs every score in memory at once."""
        for name in self.names:
            yield name, self.score(metric, name)

    def scores(self, metric: str) -> dict[str, torch.Tensor | None]:
        return dict(self.iter_scores(metric))

    def materialize(self) -> "ScoreResult":
        start = time.perf_counter()
        for metric in self.meta.metrics:
            if metric not in self.cache:
                self.cache[metric] = self.scores(metric)
        self.acc = {}
        self.meta.timings["finalize"] = time.perf_counter() - start
        return self


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def as_dtype(value: torch.dtype | str) -> torch.dtype:
    """A torch dtype, or its name as the specs write it (``float32``, ``bfloat16``, ``float16``, ``float64``)."""
    if isinstance(value, torch.dtype):
        return value
    named = getattr(torch, str(value), None)
    if not isinstance(named, torch.dtype) or not named.is_floating_point:
        raise ValueError(f"unknown floating dtype '{value}'")
    return named


def _check_model(model, device, dtype) -> tuple[torch.device, torch.dtype]:
    first = next(model.parameters())
    dtype = None if dtype is None else as_dtype(dtype)
    if device is not None and torch.device(device).type != first.device.type:
        raise ValueError(f"model is on {first.device}, scoring asked for {device}: move the model first")
    if dtype is not None and dtype != first.dtype:
        raise ValueError(f"model dtype is {first.dtype}, scoring asked for {dtype}: load the model in that dtype")
    return first.device, first.dtype


def score_model(model, params: Params, windows: list[torch.Tensor], metrics: list[str], *,
                device: torch.device | str | None = None, dtype: torch.dtype | str | None = None, seed: int = 0,
                probes: int = 8, hutchinson_windows: int | None = None, hutchinson_mode: str = "obd",
                microbatch: int = 1, pad_id: int = 0, accum_dtype: torch.dtype | str = torch.float32,
                score_dtype: torch.dtype | str = torch.float32, superweight_prompt: torch.Tensor | None = None,
                superweight_threshold: float = DEFAULT_THRESHOLD, cache_z: bool | None = None,
                lazy: bool = False, progress: bool = True) -> ScoreResult:
    """Score ``params`` (``(name, parameter)`` pairs of ``model``) with each metric over the calibration windows.

    ``windows``: one 1-D token-id tensor per calibration sequence; every token but a sequence's first is predicted.
    ``microbatch`` > 1 batches sequences (padding masked); grad_squared then becomes a per-microbatch Fisher,
    which the estimator text says. Hutchinson probes use the first ``hutchinson_windows`` windows (default all).
    """
    specs = [get_metric(m) for m in dict.fromkeys(metrics)]
    check_hutchinson_mode(hutchinson_mode)
    accum_dtype, score_dtype = as_dtype(accum_dtype), as_dtype(score_dtype)
    dev, model_dtype = _check_model(model, device, dtype)
    names = [name for name, _ in params]
    if len(set(names)) != len(names):
        raise ValueError("parameter names must be unique")
    if not windows and any(m.pass_kind in ("gradient", "hutchinson") for m in specs):
        raise ValueError("no calibration windows")
    if not windows and superweight_prompt is None and any(m.pass_kind == "superweight" for m in specs):
        raise ValueError("superweight needs a prompt (superweight_prompt) or a calibration window")
    meta = ScoreMeta(metrics=[m.name for m in specs], n_params=len(params),
                     n_weights=sum(p.numel() for _, p in params), dtype=str(model_dtype).replace("torch.", ""),
                     device=str(dev), accum_dtype=str(accum_dtype).replace("torch.", ""),
                     score_dtype=str(score_dtype).replace("torch.", ""), seed=seed, microbatch=microbatch)
    acc: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    fmt: dict = {"microbatch": microbatch, "probes": probes, "superweight_threshold": superweight_threshold,
                 "hutchinson_report": HUTCHINSON_REPORT[hutchinson_mode],
                 "fisher_note": "" if microbatch == 1 else
                 " (microbatches of several sequences: NOT per-sequence gradients)"}
    batches = make_batches(windows, microbatch, pad_id) if windows else []
    need = frozenset().union(*(m.accumulators for m in specs))

    with scoring_mode(model, params, deterministic=dev.type == "cpu"):
        if any(m.pass_kind == "gradient" for m in specs):
            start = time.perf_counter()
            grad_acc, stats = gradient_pass(model, params, batches, need=need & {"grad_sum", "grad_sq", "act_sq"},
                                            accum_dtype=accum_dtype, device=dev, progress=progress)
            for name in names:
                acc[name].update(grad_acc[name])
            meta.n_tokens, meta.n_sequences = stats.n_tokens, stats.n_sequences
            meta.n_microbatches, meta.n_input_positions = stats.n_batches, stats.n_positions
            meta.passes.append("gradient" if need & {"grad_sum", "grad_sq"} else "activations")
            meta.timings["gradient"] = time.perf_counter() - start
            if "act_sq" in need:
                meta.notes["act_mag"] = act_mag_notes(model, params, acc)
        if any(m.pass_kind == "hutchinson" for m in specs):
            start = time.perf_counter()
            chosen = batches if hutchinson_windows is None else make_batches(windows[:hutchinson_windows],
                                                                             microbatch, pad_id)
            total = sum(b.n_tokens for b in chosen)

            def losses():
                for batch in chosen:
                    yield batch_loss(model, batch, dev), batch.n_tokens / total

            with eager_attention(model) as attn:
                sums = hutchinson_sums(params, losses, probes=probes, seed=seed, accum_dtype=accum_dtype,
                                       cache_z=dev.type == "cpu" if cache_z is None else cache_z,
                                       progress=progress)
            for name in names:
                acc[name]["hess"] = sums[name]
            n_seq = sum(b.n_sequences for b in chosen)
            meta.hutchinson = {"probes": probes, "windows": n_seq, "tokens": total, "mode": hutchinson_mode,
                               "attention": attn, "window_subset": "all" if hutchinson_windows is None
                               else f"first {n_seq} calibration windows"}
            fmt.update(hutchinson_windows=n_seq, hutchinson_tokens=total)
            meta.passes.append("hutchinson")
            meta.timings["hutchinson"] = time.perf_counter() - start
        if any(m.pass_kind == "superweight" for m in specs):
            start = time.perf_counter()
            prompt = superweight_prompt if superweight_prompt is not None else windows[0]
            report = detect_superweights(model, prompt, threshold=superweight_threshold)
            for name, score in superweight_scores(report, params, model).items():
                acc[name]["superweight"] = score
            meta.superweight = report.to_dict()
            meta.superweight["prompt"] = "given" if superweight_prompt is not None else "first calibration window"
            fmt.update(superweight_tokens=report.n_tokens)
            meta.passes.append("superweight")
            meta.timings["superweight"] = time.perf_counter() - start

    fmt.update(n_tokens=meta.n_tokens, n_batches=meta.n_microbatches, n_input_tokens=meta.n_input_positions)
    meta.estimators = {m.name: m.estimator.format(**fmt) for m in specs}
    result = ScoreResult(meta=meta, names=names, params=dict(params), acc=acc, n_probes=probes,
                         hutchinson_mode=hutchinson_mode, score_dtype=score_dtype)
    return result if lazy else result.materialize()
