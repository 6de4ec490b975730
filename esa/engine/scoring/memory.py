"""How much memory one seed of a score run needs: a written estimate, before any tensor is allocated.

Torch-free arithmetic on a model's shape (``ModelShape``), so `esa show` can print it without loading the model
and the score stage can check it against the free memory before spending the compute. In bytes, with b(x) the
size of one element of dtype x (float32 4, bfloat16/float16 2):

    weights       = n_params · b(dtype)                        every parameter of the model stays resident
    accumulators  = Σ_a n_scored · b(accum_dtype)               a ∈ {grad_sum, grad_sq, hess} the metrics need
                  + scored_inputs · 4                            act_mag's per-input-feature sums (always float32)
    probes        = n_scored · b(dtype)                         Hutchinson's cached z (CPU only; regenerated on GPU)
    activations   = microbatch · context · (hidden · layers · ACTIVATION_FACTOR · b(dtype) + vocab · 4 · LOGIT_COPIES)
                    (layers → 1 when no metric needs a backward pass; × 2 with hutchinson_diag, whose double
                    backward keeps the first backward's graph)
    gradients     = GRADIENTS_IN_FLIGHT · largest · b(dtype)     per-sequence gradients: hooks fold each parameter's
                    gradient into its accumulators and drop it, so only a few matrices' gradients exist at once
                    (0 without a backward pass)
    scores        = n_scored · 4 when full score tensors are saved (one metric's are held to be written),
                    else SCORE_COPIES · largest · 4 (one matrix's score and its statistics' temporaries)

Accumulators per metric family: grad_x_weight → grad_sum; grad_squared and obd → grad_sq (shared); act_mag →
act_sq; hutchinson_diag → hess; magnitude and superweight → none (superweight's few one-hot scores are ignored).
The activation term is rough (attention layouts, fused kernels and the allocator's slack differ); the rest counts
tensors the passes allocate.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
# Values saved for backward per token, hidden unit and layer: a Llama block keeps about 16–34 (Korthikanti et al.,
# "Reducing Activation Recomputation in Large Transformer Models"); 24 sits in that range.
ACTIVATION_FACTOR = 24
LOGIT_COPIES = 3  # float32 logits, their log-softmax and its gradient
GRADIENTS_IN_FLIGHT = 2
SCORE_COPIES = 3
SAVE_SCORES_AUTO_LIMIT = 100_000_000  # parameters; full score tensors of larger models are not kept

METRIC_ACCUMULATORS: dict[str, tuple[str, ...]] = {
    "grad_x_weight": ("grad_sum",),
    "grad_squared": ("grad_sq",),
    "obd": ("grad_sq",),
    "act_mag": ("act_sq",),
    "hutchinson_diag": ("hess",),
    "magnitude": (),
    "superweight": (),
}
PER_WEIGHT = ("grad_sum", "grad_sq", "hess")  # one value per scored weight, at accum_dtype
BACKWARD = frozenset({"grad_x_weight", "grad_squared", "obd", "hutchinson_diag"})


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model (and which of its matrices a run scores)."""

    n_params: int  # every parameter
    n_scored: int  # elements of the scored matrices
    scored_inputs: int  # input features summed over the scored nn.Linear weights (act_mag's sums)
    largest: int  # elements of the largest scored parameter
    hidden_size: int
    num_layers: int
    vocab_size: int


@dataclass(frozen=True)
class MemoryEstimate:
    parts: dict[str, int]  # bytes, in the order of the docstring's formula
    accumulators: tuple[str, ...]
    accum_dtype: str
    model_dtype: str

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def to_allocate(self) -> int:
        """What is still to come once the model is loaded: the total less the resident weights."""
        return self.total - self.parts["weights"]

    def line(self) -> str:
        """'12.3 GiB = weights 1.2 + accumulators 3.4 (grad_sum at float32, …) + …' (GiB throughout)."""
        terms = []
        for name, size in self.parts.items():
            if name == "accumulators" and self.accumulators:
                kinds = [f"{a} at {self.accum_dtype if a in PER_WEIGHT else 'float32'}" for a in self.accumulators]
                terms.append(f"accumulators {gib(size)} ({', '.join(kinds)})")
            elif size or name in ("weights", "accumulators"):
                terms.append(f"{name} {gib(size)}")
        return f"{gib(self.total)} GiB = " + " + ".join(terms)

    def to_dict(self) -> dict:
        return {"total_gib": round(self.total / GIB, 4), "parts_gib": {k: round(v / GIB, 4)
                                                                      for k, v in self.parts.items()},
                "accumulators": list(self.accumulators), "accum_dtype": self.accum_dtype,
                "dtype": self.model_dtype, "line": self.line()}


def gib(size: int) -> str:
    value = size / GIB
    return f"{value:.3g}" if value >= 0.01 or value == 0 else f"{value:.2g}"


def accumulators_of(metrics: list[str]) -> tuple[str, ...]:
    """The accumulators the metrics need, each once (grad_squared and obd share grad_sq), in metric order."""
    unknown = [m for m in metrics if m not in METRIC_ACCUMULATORS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}")
    return tuple(dict.fromkeys(a for m in metrics for a in METRIC_ACCUMULATORS[m]))


def save_scores_of(setting, n_params: int) -> bool:
    """The save_scores setting (auto, true, false) for a model of ``n_params`` parameters."""
    return n_params <= SAVE_SCORES_AUTO_LIMIT if setting == "auto" else bool(setting)


def estimate_memory(shape: ModelShape, metrics: list[str], *, model_dtype: str, accum_dtype: str, microbatch: int,
                    context: int, save_scores: bool, cache_z: bool = True) -> MemoryEstimate:
    """The memory of one seed of a score run, in parts (see the module docstring for the formula)."""
    for name, dtype in (("dtype", model_dtype), ("accum_dtype", accum_dtype)):
        if dtype not in BYTES:
            raise ValueError(f"{name} '{dtype}' has no known element size ({', '.join(BYTES)})")
    weight, accum = BYTES[model_dtype], BYTES[accum_dtype]
    needed = accumulators_of(metrics)
    backward = bool(BACKWARD & set(metrics))
    hutchinson = "hutchinson_diag" in metrics
    accumulators = sum(shape.n_scored * accum for a in needed if a in PER_WEIGHT)
    accumulators += shape.scored_inputs * BYTES["float32"] if "act_sq" in needed else 0
    layers = shape.num_layers if backward else 1
    activations = 0
    if backward or needed:  # a data pass runs (act_mag alone: forward only)
        per_token = shape.hidden_size * layers * ACTIVATION_FACTOR * weight + shape.vocab_size * 4 * LOGIT_COPIES
        activations = microbatch * context * per_token * (2 if hutchinson else 1)
    parts = {
        "weights": shape.n_params * weight,
        "accumulators": accumulators,
        "probes": shape.n_scored * weight if hutchinson and cache_z else 0,
        "activations": activations,
        "gradients": GRADIENTS_IN_FLIGHT * shape.largest * weight if backward else 0,
        "scores": shape.n_scored * 4 if save_scores else SCORE_COPIES * shape.largest * 4,
    }
    return MemoryEstimate(parts=parts, accumulators=needed, accum_dtype=accum_dtype, model_dtype=model_dtype)
