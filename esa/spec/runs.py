"""Runs that measure a model: evaluation, scoring, single-weight ablation and perturbation (their union with the
runs that read results is esa.spec.all_runs)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esa.accumulators import ACCUM_DTYPES, AUTO, DEFAULT_RULE, default_accum_dtype
from esa.names import MODES
from esa.registry import INSTRUCT_MODELS, PACKAGED_MODELS, PROTOCOLS, REFERENCE_MODELS
from esa.spec.model_source import is_hub_id, is_local_path, is_project_model
from esa.spec.names import Control, MetricName, Mode, Perturbation

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)]
DType = Literal["float32", "float16", "bfloat16", "auto"]
Device = Literal["cpu", "cuda", "auto"]
# Run fields that reach the stage through load_settings() rather than the kind's own params.
LOAD_FIELDS = ("revision", "trust_remote_code")
# accelerate's placement of a model over devices (esa.engine.models.placement); in params only when set.
PLACEMENT_FIELDS = ("device_map", "max_memory")
SPLITS = ("auto", "balanced", "balanced_low_0", "sequential")
PLACED_ON = re.compile(r"^(cpu|disk|cuda(:\d+)?|\d+)$")
MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B$")


def check_model_name(value: str) -> str:
    """A reference- or packaged-model name, a hub id (``org/name``) or a local path (esa.spec.model_source)."""
    if is_project_model(value) or is_local_path(value) or is_hub_id(value):
        return value
    known = ", ".join([*sorted(REFERENCE_MODELS), *sorted(INSTRUCT_MODELS)])
    packaged = ", ".join(sorted(PACKAGED_MODELS))
    raise ValueError(f"unknown model '{value}': use a reference model ({known}), a packaged model ({packaged}), "
                     f"a hub id like 'EleutherAI/pythia-1.4b', or a path starting with ./ or /")


def check_protocol(value: str) -> str:
    if value not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{value}' (known: {', '.join(PROTOCOLS)})")
    return value


class _RunBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    description: str = ""
    model: str = Field("ref-s", description="reference or packaged model name, hub id (org/name) or local path")
    # Checked against the registry and the spec's own `corpora:` once the whole spec is read (esa.spec.loader).
    data: Ident = Field("stdlib", description="corpus name: a registry corpus or one of the spec's `corpora:`")
    seeds: list[int] = Field([1337, 123, 999], min_length=1)
    dtype: DType = "float32"
    device: Device = "cpu"
    revision: str | None = Field(None, min_length=1, description=(
        "hub ids only: the commit, tag or branch from_pretrained loads (a commit hash pins the run)"))
    trust_remote_code: bool = Field(False, description=(
        "run the Python code a checkpoint ships (config.json auto_map); off unless the spec opts in"))

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return check_model_name(value)

    @model_validator(mode="after")
    def _revision(self):
        if self.revision is not None and not is_hub_id(self.model):
            raise ValueError(f"revision pins a hub id (org/name); '{self.model}' is not one")
        return self

    def load_settings(self) -> dict[str, Any]:
        """What from_pretrained is told beyond the model: a hub id's revision (null: unpinned) and the remote-code
        opt-in when given. Left out for other models so their params, and DVC's record of them, stay as they were."""
        settings: dict[str, Any] = {"revision": self.revision} if is_hub_id(self.model) else {}
        if self.trust_remote_code:
            settings["trust_remote_code"] = True
        return settings

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        if any(seed < 0 or seed >= 2**32 for seed in value):
            raise ValueError("seeds must be integers in [0, 2**32)")
        return value


class EvalRun(_RunBase):
    """Held-out evaluation: perplexity, bits per byte and top-1 accuracy on the evaluation split."""

    kind: Literal["eval"]
    protocol: str = "standard"
    split: Literal["evaluation"] = "evaluation"
    # Overrides of the protocol's values; None keeps the protocol's.
    context: int | None = Field(None, gt=1)
    stride: int | None = Field(None, gt=0)
    max_windows: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    def resolved(self) -> dict[str, Any]:
        """The values a stage needs, with the protocol's defaults filled in."""
        protocol = PROTOCOLS[self.protocol]
        context = self.context or protocol.context
        return {
            "protocol": self.protocol,
            "context": context,
            "stride": self.stride or min(protocol.stride, context),
            "max_windows": self.max_windows or protocol.max_windows,
            "batch_size": self.batch_size or protocol.batch_size,
            "split": self.split,
            "dtype": self.dtype,
            "device": self.device,
            # Seed i of n draws its windows from part i of n document-disjoint parts of the pool.
            "seed_plan": list(self.seeds),
        }




class ScoreRun(_RunBase):
    """Sensitivity scoring on calibration windows, then top-k/bottom-k selection per metric and mode.

    Metrics that share a pass (grad_x_weight, grad_squared, obd, act_mag) cost one sweep over the data.
    """

    kind: Literal["score"]
    metrics: list[MetricName] = Field(min_length=1)
    modes: list[Mode] = Field(list(MODES), min_length=1)
    topk: int = Field(100, gt=0, description="k stored per selection; smaller k are prefixes of it")
    k_grid: list[int] = Field(default_factory=list, description="k values for stability-vs-k (default k/4, k/2, k)")
    split: Literal["calibration"] = "calibration"
    max_windows: int = Field(200, gt=0, description="calibration sequences each seed draws (--max-samples)")
    context: int = Field(256, gt=1)
    include_embeddings: bool = False
    include_lm_head: bool = False
    components: list[str] | None = None
    probes: int = Field(8, gt=0, description="Hutchinson probes")
    hutchinson_windows: int = Field(16, gt=0, description="calibration sequences each Hutchinson probe uses")
    hutchinson_mode: Literal["abs", "obd"] = "abs"
    superweight_threshold: float = Field(50.0, gt=1)
    save_scores: Literal["auto"] | bool = Field(
        "auto", description="keep full score tensors (auto: models up to 100M parameters)")
    microbatch: int = Field(1, ge=1, description=(
        "calibration sequences per forward/backward of the gradient and Hutchinson passes; more is faster and "
        "needs more activation memory. Above 1, grad_squared (and obd) become a per-microbatch Fisher: the "
        "squared gradient of each microbatch's mean loss, not of each sequence's"))
    accum_dtype: Literal[(*ACCUM_DTYPES, AUTO)] = Field(AUTO, description=(
        "dtype of the per-weight accumulators (grad_x_weight, grad_squared/obd, hutchinson_diag; act_mag's "
        f"per-input-feature sums stay float32). auto: {DEFAULT_RULE}. bfloat16 halves their memory and rounds "
        "each sum to 8 significant bits"))
    device_map: str | dict[str, int | str] | None = Field(None, description=(
        "split the model over devices with accelerate: auto/balanced/sequential, or module name -> device "
        "(0, 1, cuda:0, cpu, disk). Modules sent to cpu beside a GPU, or to disk, are offloaded: their weights "
        "stay in host memory or a temporary folder and visit the device for their forward"))
    max_memory: dict[int | str, int | str] | None = Field(None, description=(
        "with device_map: the most each device may hold, e.g. {0: 70GiB, cpu: 200GiB}; what does not fit goes "
        "to disk"))

    @field_validator("device_map")
    @classmethod
    def _device_map(cls, value):
        # One message per mistake (a typed union would report each alternative it tried).
        if isinstance(value, str) and value not in SPLITS:
            raise ValueError(f"'{value}' is not a split: use {', '.join(SPLITS)} or a map of module name -> device")
        if isinstance(value, dict):
            bad = {k: v for k, v in value.items() if not PLACED_ON.match(str(v)) or isinstance(v, bool)}
            if bad:
                raise ValueError(f"unknown device for {', '.join(map(str, bad))}: use 0, 1, cuda:0, cpu or disk")
        return value

    @field_validator("max_memory")
    @classmethod
    def _max_memory(cls, value):
        for device, size in (value or {}).items():
            if not re.match(r"^(cpu|\d+)$", str(device)):
                raise ValueError(f"unknown device '{device}': use a GPU index (0, 1, ...) or cpu")
            if not (isinstance(size, int) and size > 0 or isinstance(size, str) and MEMORY_SIZE.match(size)):
                raise ValueError(f"{device}: '{size}' is not a size: bytes, or like 70GiB, 512MB")
        return value

    @model_validator(mode="after")
    def _placement(self):
        if self.max_memory and self.device_map is None:
            raise ValueError("max_memory needs a device_map (e.g. device_map: auto)")
        return self

    @field_validator("metrics", "modes")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value

    @field_validator("k_grid")
    @classmethod
    def _grid(cls, value: list[int]) -> list[int]:
        if any(k <= 0 for k in value):
            raise ValueError("k values must be positive")
        return sorted(set(value))

    def ks(self) -> list[int]:
        return [k for k in (self.k_grid or [max(1, self.topk // 4), max(1, self.topk // 2), self.topk])
                if k <= self.topk]

    def resolved(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "k_grid", *LOAD_FIELDS,
                                        *PLACEMENT_FIELDS})
        # Placement only when asked for, so the params (and DVC's record) of unsplit runs stay as they were.
        data.update({key: getattr(self, key) for key in PLACEMENT_FIELDS if getattr(self, key) is not None})
        data["k_grid"] = self.ks()
        data["seed_plan"] = list(self.seeds)
        # The default written out where the device and dtype decide it (auto stays when the stage must decide).
        if self.accum_dtype == AUTO:
            data["accum_dtype"] = default_accum_dtype(self.device, self.dtype)
        return data


class AblationRun(_RunBase):
    """Single-weight ablation: zero each sampled weight, measure the real held-out ΔNLL, and compare it with
    each metric's score (Spearman ρ). Reads a score run's saved full score tensors; never rescores them."""

    kind: Literal["ablation_check"]
    scores: Ident = Field(description="id of the score run whose scores are checked")
    metrics: list[MetricName] | None = Field(None, description="metrics to check (default: the score run's)")
    rank_by: MetricName | None = Field(None, description="metric whose global rank is reported (default: first)")
    top: int = Field(50, gt=0, description="all weights of every checked metric's global top-`top` (the union)")
    n_random: int = Field(300, ge=0, description="more non-zero weights drawn uniformly over all scored weights")
    eval_windows: int = Field(64, gt=0, description="held-out evaluation windows the damage is measured on")
    context: int = Field(256, gt=1)
    batch_size: int = Field(16, gt=0)
    eval_scores: bool = Field(True, description="also score gradient metrics on the evaluation windows (transfer)")

    def resolved_with(self, score_run: "ScoreRun") -> dict[str, Any]:
        metrics = self.metrics or [m for m in score_run.metrics if m != "superweight"]
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "scores", *LOAD_FIELDS})
        data.update(metrics=metrics, rank_by=self.rank_by or metrics[0], seed_plan=list(self.seeds))
        return data




class ScoresRef(BaseModel):
    """Which Phase-2 selection a perturbation run targets (read from that spec's scoring stage, never rescored)."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field("specs/phase2.yaml", description="path of the spec holding the score run")
    run: Ident
    metric: MetricName = "grad_x_weight"
    mode: Mode = "per_layer"
    k: int = Field(100, gt=0)
    seed: int | None = Field(None, description=(
        "one scoring seed whose top-k is the super set of every perturbation seed (only the controls are then "
        "resampled); default: each perturbation seed uses the scoring seed at the same position, so seeds "
        "resample the super set too"))


class PerturbRun(_RunBase):
    """Perturb the super set and matched controls; evaluate on the same held-out windows as the shared baseline.

    Each seed takes the super set of its own scoring seed (paired by position) and redraws the random control and
    noise; ``levels`` turns the run into a dose-response series (one noise draw, scaled by level). The evaluation
    pool is split by document into ``eval_folds`` parts and the run evaluates on part ``eval_fold``, so a repeat
    on another part measures the same effect on disjoint text.
    """

    kind: Literal["perturb"]
    scores: ScoresRef
    perturbation: Perturbation
    scale: float = Field(1.0, description="factor (scale), σ multiplier (gauss_noise, adaptive), ε (grad_step)")
    levels: list[float] = Field(default_factory=list, description="dose-response: one condition per scale")
    sigma_mode: Literal["abs", "tensor_std"] = "abs"
    prob: float = Field(1.0, gt=0, le=1, description="bit_flip: fraction of targeted weights flipped")
    bit: Literal["exponent_msb", "random"] | int = "exponent_msb"
    direction: Literal["ascend", "descend"] = "ascend"
    unit: Literal["row", "col", "head", "matrix"] = "row"
    inner: Literal["zero", "gauss_noise", "sign_flip"] = "zero"
    controls: list[Control] = Field(
        ["random_k", "bottom_k"], description="random_matched: random weights of the same matrix and binary exponent")
    protocol: str = "standard"
    eval_seed: int = Field(1337, description="seed of the evaluation windows shared with the baseline")
    eval_folds: int = Field(2, gt=0, description="document-disjoint parts the evaluation pool is split into")
    eval_fold: int = Field(0, ge=0, description="the part this run evaluates on (a repeat uses another)")
    share_load: bool = Field(False, description=(
        "one stage loads the model once for every seed of this run and of the spec's other share_load perturb "
        "runs of the same model, dtype and device (instead of one load per run and seed); a change to any of "
        "their params re-runs them all"))

    _protocol = field_validator("protocol")(classmethod(lambda cls, value: check_protocol(value)))

    @model_validator(mode="after")
    def _fold(self):
        if self.eval_fold >= self.eval_folds:
            raise ValueError(f"eval_fold {self.eval_fold} is outside 0..{self.eval_folds - 1}")
        return self

    def baseline_dir(self) -> str:
        """Where the shared unperturbed evaluation of this run's model, data and windows lives."""
        return (f"results/baselines/{self.model_slug()}-{self.data}/{self.protocol}-{self.dtype}/"
                f"fold{self.eval_fold}of{self.eval_folds}-seed{self.eval_seed}")

    def model_slug(self) -> str:
        """The model's part of the baseline's name; a pinned revision is part of it (another revision is another
        model)."""
        from esa.spec.sweeps import slug

        return slug(self.model) + (f"-{slug(self.revision)[:12]}" if self.revision else "")

    def evaluation(self) -> dict[str, Any]:
        protocol = PROTOCOLS[self.protocol]
        return {"protocol": self.protocol, "context": protocol.context, "stride": protocol.stride,
                "max_windows": protocol.max_windows, "batch_size": protocol.batch_size, "split": "evaluation",
                "dtype": self.dtype, "device": self.device, "folds": self.eval_folds, "fold": self.eval_fold}

    def resolved(self) -> dict[str, Any]:
        # share_load decides how stages are cut, not what a stage computes: it is no param.
        data = self.model_dump(exclude={"id", "kind", "description", "seeds", "model", "data", "scores", "share_load",
                                        *LOAD_FIELDS})
        data.update(self.evaluation())
        data["levels"] = self.levels or [self.scale]
        return data
