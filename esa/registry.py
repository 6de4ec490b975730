"""Torch-free registries shared by the spec validator, the compiler and the engine.

Reference models are trained by the project itself (offline); protocols fix the evaluation budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CorpusConfig:
    """A corpus built from text every Python install carries, split by document."""

    name: str
    # Documents are assigned to splits by a hash of their path: fractions of documents per split.
    calibration_fraction: float = 0.1
    evaluation_fraction: float = 0.1
    # Byte caps keep corpus building and training fast on two cores; 0 = no cap.
    max_train_bytes: int = 0
    max_calibration_bytes: int = 0
    max_evaluation_bytes: int = 0

    def params(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReferenceModel:
    """A small Llama-architecture causal LM trained deterministically on CPU from a corpus."""

    name: str
    corpus: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    train_steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    seed: int = 0
    description: str = ""

    def params(self) -> dict:
        data = asdict(self)
        data.pop("description")
        return data


@dataclass(frozen=True)
class Protocol:
    """An evaluation budget: window length, stride, and how many windows each seed samples."""

    name: str
    context: int
    stride: int
    max_windows: int
    batch_size: int
    description: str = ""


CORPORA: dict[str, CorpusConfig] = {
    # Calibration and evaluation get a quarter or more of the documents each: seeds draw from document-disjoint
    # parts of these pools, so five seeds of a few hundred windows each must fit. Training needs far fewer bytes
    # than the rest (ref-s sees about 2.7M tokens).
    "stdlib": CorpusConfig(
        name="stdlib",
        calibration_fraction=0.25,
        evaluation_fraction=0.3,
        max_train_bytes=12_000_000,
        max_calibration_bytes=4_000_000,
        max_evaluation_bytes=4_000_000,
    ),
    # A small corpus for tests and quick checks.
    "stdlib-tiny": CorpusConfig(
        name="stdlib-tiny",
        max_train_bytes=400_000,
        max_calibration_bytes=100_000,
        max_evaluation_bytes=100_000,
    ),
}

REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "ref-xs": ReferenceModel(
        name="ref-xs",
        corpus="stdlib-tiny",
        vocab_size=512,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        train_steps=60,
        batch_size=8,
        seq_len=64,
        learning_rate=3e-3,
        description="ultra-tiny model for tests (seconds to train)",
    ),
    "ref-s": ReferenceModel(
        name="ref-s",
        corpus="stdlib",
        vocab_size=4096,
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        intermediate_size=384,
        max_position_embeddings=512,
        train_steps=1300,
        batch_size=8,
        seq_len=256,
        learning_rate=2e-3,
        description="default embedded model (about 2M parameters, a few minutes on 2 CPU cores)",
    ),
}

PROTOCOLS: dict[str, Protocol] = {
    "smoke": Protocol("smoke", context=128, stride=64, max_windows=64, batch_size=16,
                      description="quick check: short windows, small token budget"),
    "standard": Protocol("standard", context=256, stride=128, max_windows=256, batch_size=16,
                         description="default: enough tokens for stable seed-to-seed estimates"),
    "extended": Protocol("extended", context=512, stride=256, max_windows=512, batch_size=8,
                         description="long context and the largest token budget"),
}


def is_reference_model(name: str) -> bool:
    return name in REFERENCE_MODELS

# Sensitivity metrics (computed by esa.engine.metrics; names listed here so specs validate without torch).
METRICS: dict[str, str] = {
    "grad_x_weight": "|w ⊙ ∂L/∂w|, first-order Taylor estimate of zeroing w",
    "grad_squared": "empirical Fisher diagonal from per-sequence gradients",
    "obd": "½·F_ii·w², Optimal Brain Damage saliency from the empirical Fisher",
    "act_mag": "|W_ij|·‖X_j‖₂ over calibration inputs (Wanda)",
    "hutchinson_diag": "Hutchinson estimate of the Hessian diagonal, Rademacher probes",
    "magnitude": "|w|",
    "superweight": "data-free down_proj activation-spike detector",
}
