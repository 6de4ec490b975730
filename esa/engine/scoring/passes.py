"""The Phase-2 scoring passes: every requested metric from as few sweeps over the calibration windows as possible.

- gradient pass: one fwd+bwd sweep in microbatches (default one sequence each, so per-sequence gradients are
  exact) fills the accumulators of grad_x_weight, grad_squared, obd and act_mag together. Each parameter's
  gradient is folded into its accumulators by a post-accumulate hook that drops ``.grad`` at once: no full
  gradient buffer is ever held. With act_mag alone the sweep is forward-only.
- hutchinson pass: its own sweep per probe (double backward, eager attention).
- superweight: one forward pass on a short prompt. magnitude: no pass.

Scores are computed from the accumulators and the current weights, in chunks, when asked for (see ScoreResult).
Windows and microbatches live in batches.py; the gradient sweep in gradient_pass.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch

from esa.engine.data.batches import Params, batch_loss, make_batches
from esa.engine.models.placement import input_device, offload_entry, register_offloaded, stored_value
from esa.engine.scoring.gradient_pass import act_mag_notes, eager_attention, gradient_pass, scoring_mode
from esa.engine.scoring.hutchinson import hutchinson_sums, window_subset
from esa.engine.scoring.metrics import HUTCHINSON_REPORT, ScoreInputs, check_hutchinson_mode, get_metric
from esa.engine.scoring.superweight import DEFAULT_THRESHOLD, detect_superweights, superweight_scores

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
        stats = ScoreInputs(weight=stored_value(self.params[name]), acc=self.acc.get(name, {}),
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
    where = input_device(model)  # a dispatched model: where its inputs go (its first module's device)
    dtype = None if dtype is None else as_dtype(dtype)
    if device is not None and torch.device(device).type != where.type:
        raise ValueError(f"model is on {where}, scoring asked for {device}: move the model first")
    if dtype is not None and dtype != first.dtype:
        raise ValueError(f"model dtype is {first.dtype}, scoring asked for {dtype}: load the model in that dtype")
    return where, first.dtype


def check_placement(model, params: Params, metrics: list[str]) -> None:
    """Hutchinson probes and the super-weight scan read weights outside the gradient sweep's hooks: they need every
    scored weight resident, not offloaded by a device_map."""
    register_offloaded(model)
    resident_only = [m for m in metrics if get_metric(m).pass_kind in ("hutchinson", "superweight")]
    if resident_only and any(offload_entry(p) is not None for _, p in params):
        raise ValueError(f"{', '.join(resident_only)} need every scored weight on a device; this device_map offloads "
                         "some to cpu/disk (give them more max_memory, or score them in a separate run)")


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
    which the estimator text says. Hutchinson probes use ``hutchinson_windows`` windows drawn at random with
    ``seed`` (default all; see hutchinson.window_subset).
    """
    specs = [get_metric(m) for m in dict.fromkeys(metrics)]
    check_hutchinson_mode(hutchinson_mode)
    accum_dtype, score_dtype = as_dtype(accum_dtype), as_dtype(score_dtype)
    dev, model_dtype = _check_model(model, device, dtype)
    names = [name for name, _ in params]
    if len(set(names)) != len(names):
        raise ValueError("parameter names must be unique")
    check_placement(model, params, [m.name for m in specs])
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
            picked = window_subset(len(windows), hutchinson_windows, seed)
            subset = len(picked) < len(windows)
            chosen = make_batches([windows[i] for i in picked], microbatch, pad_id) if subset else batches
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
                               "attention": attn, "window_subset": f"{n_seq} of {len(windows)} calibration windows "
                               "drawn uniformly with the run's seed" if subset else f"all {n_seq} calibration windows"}
            if subset:
                meta.hutchinson["window_indices"] = picked  # positions in the calibration windows, sorted
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
