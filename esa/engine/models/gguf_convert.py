"""Pretrained LMs shipped as GGUF files (llama.cpp's format): find the file a package ships, convert it to a float32
transformers checkpoint, and say where its weights came from.

transformers dequantizes a GGUF file to float when loading it, but refuses to save such a model; the weights are
therefore copied into a fresh model built from the same config, which saves like any other.
"""

from __future__ import annotations

import time
from collections import Counter
from importlib import metadata
from pathlib import Path

from esa.configs import PackagedModel
from esa.stageio import sha256_file

INSTALL_HINT = "run `make demo-real` or `pip install 'esa[real]'`"
# Tensor types that store weights as plain floats: a file made only of these was not quantized.
FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}


class PackageMissing(RuntimeError):
    """The package that ships a packaged model's GGUF file is not installed (or lacks the file)."""


def packaged_gguf(model: PackagedModel) -> Path:
    """The GGUF file ``model.package`` installs; PackageMissing names the package and the install command."""
    try:
        dist = metadata.distribution(model.package)
    except metadata.PackageNotFoundError:
        raise PackageMissing(f"{model.name} needs the package '{model.package}', which is not installed: "
                             f"{INSTALL_HINT}") from None
    # Found through the distribution's file list: importing the package itself would need its runtime deps.
    for entry in dist.files or ():
        if entry.name == model.filename:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise PackageMissing(f"package '{model.package}' {dist.version} ships no file {model.filename}: reinstall it "
                         f"({INSTALL_HINT})")


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gguf_header(gguf_path: Path) -> dict:
    """Architecture, file type and tensor types, read from the file's metadata without loading its tensors."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(str(gguf_path))
    tensor_types = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    file_type_field = reader.fields.get("general.file_type")
    if file_type_field is not None:
        code = int(file_type_field.contents())
        file_type = LlamaFileType(code).name if code in LlamaFileType._value2member_map_ else f"file type {code}"
    else:  # older files: the most common tensor type stands for the file
        file_type = tensor_types.most_common(1)[0][0]
    return {
        "architecture": reader.fields["general.architecture"].contents(),
        "file_type": file_type,
        "tensor_types": dict(sorted(tensor_types.items())),
        "quantized": any(name not in FLOAT_TYPES for name in tensor_types),
    }


def convert_gguf(gguf_path: Path, out: Path) -> dict:
    """Save ``gguf_path`` as a float32 transformers model + tokenizer in ``out``; return the provenance."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out)
    header = gguf_header(gguf_path)
    start = time.perf_counter()
    where = {"pretrained_model_name_or_path": str(gguf_path.parent), "gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(**where)
    loaded = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    config = loaded.config
    # The saved checkpoint is plain float32: without this note from the GGUF loader it loads as any other model.
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    source = header["file_type"]
    return {
        "gguf_file": gguf_path.name,
        "gguf_sha256": sha256_file(gguf_path),
        "gguf_bytes": gguf_path.stat().st_size,
        "gguf_file_type": source,
        "gguf_tensor_types": header["tensor_types"],
        "architecture": header["architecture"],
        "model_class": type(model).__name__,
        "n_params": sum(p.numel() for p in model.parameters()),
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "dtype": "float32",
        "weights": (f"dequantized from {source} to float32" if header["quantized"]
                    else f"copied from {source} (not quantized) as float32"),
        "convert_s": round(time.perf_counter() - start, 3),
    }
