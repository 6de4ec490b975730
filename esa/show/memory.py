"""The memory estimate of a score run, for `esa show`, without loading the model.

The model's shape comes from its config: a reference model's from the registry; a packaged model's, a hub id's or
a local path's from a config.json that is already on this machine (the packaged stage's output, the Hugging Face
cache, the path). Nothing is downloaded: without a local config the estimate is "unknown until loaded".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from esa.accumulators import AUTO
from esa.compile.shared import reference_dir
from esa.engine.scoring.memory import ModelShape, estimate_memory, save_scores_of
from esa.registry import PACKAGED_MODELS, reference_of

UNKNOWN = "unknown until loaded"


class _Vocabulary:
    """What the reference configs read from a tokenizer: its size and end-of-text id (the shapes need no more)."""

    def __init__(self, size: int):
        self.size, self.eos_token_id = size, 0

    def __len__(self) -> int:
        return self.size


def _local_config(model: str, root: Path):
    """The transformers config of a packaged model, hub id or path when its config.json is here; else None."""
    from transformers import AutoConfig

    if model in PACKAGED_MODELS:
        location = root / reference_dir(model)
    elif model.startswith(("/", "./", "../", "~")):
        location = (root / Path(model).expanduser()).resolve()
    else:
        location = None  # a hub id: only the local cache is read
    try:
        if location is not None:
            return AutoConfig.from_pretrained(str(location)) if (location / "config.json").is_file() else None
        return AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):
        return None


def _config(model: str, root: Path):
    reference = reference_of(model)
    if reference is not None:
        from esa.engine.models.reference import llama_config, mixtral_config

        build = mixtral_config if hasattr(reference, "num_experts") else llama_config
        return build(reference, _Vocabulary(reference.vocab_size))
    return _local_config(model, root)


@lru_cache(maxsize=64)
def _shape(model: str, root: str, include_embeddings: bool, include_lm_head: bool,
           components: tuple[str, ...] | None) -> tuple[ModelShape | None, str]:
    """(shape, stored dtype of the checkpoint or '') of a model with a run's scored matrices; (None, '') unknown."""
    from esa.engine.models.shape import config_shape

    config = _config(model, Path(root))
    if config is None:
        return None, ""
    shape = config_shape(config, include_embeddings=include_embeddings, include_lm_head=include_lm_head,
                         components=list(components) if components is not None else None)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or ""
    return shape, str(stored).removeprefix("torch.")


def memory_phrase(run, root: Path) -> str:
    """'memory per seed 0.0123 GiB = weights … + …' for a score run, or why it is not known yet."""
    shape, stored = _shape(run.model, str(root), run.include_embeddings, run.include_lm_head,
                           tuple(run.components) if run.components is not None else None)
    if shape is None:
        return f"memory per seed {UNKNOWN} (no local config.json for {run.model})"
    model_dtype = run.dtype if run.dtype != "auto" else (stored if stored in ("float32", "bfloat16", "float16")
                                                          else "float32")
    accum = run.resolved()["accum_dtype"]
    note = ""
    if accum == AUTO:  # decided by the stage from the device it gets: count the larger
        accum, note = "float32", " (accum_dtype auto, counted as float32: the stage decides)"
    estimate = estimate_memory(shape, list(run.metrics), model_dtype=model_dtype, accum_dtype=accum,
                               microbatch=run.microbatch, context=run.context,
                               save_scores=save_scores_of(run.save_scores, shape.n_params),
                               cache_z=run.device != "cuda")
    if run.device_map is not None:  # accelerate spreads the weights (and their accumulators) over the devices
        note += " (over all devices of the device_map together)"
    return f"memory per seed {estimate.line()}{note}"
