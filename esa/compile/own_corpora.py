"""A spec's own corpora (``corpora:``) at compile time: their stage configs, the local text as a DVC dependency,
and the checks that need the project (the path exists; specs sharing a corpus name agree on it)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from esa.configs import CorpusConfig, HFDatasetCorpus, LocalTextCorpus
from esa.spec import Spec, SpecError


def local_dep(path: str, root: Path) -> str:
    """The path as dvc.yaml lists it and the stage reads it (from the project root): relative and normalized
    inside the project, absolute outside it (DVC takes absolute paths as dependencies)."""
    expanded = Path(os.path.expanduser(path))
    absolute = expanded if expanded.is_absolute() else root.resolve() / expanded
    absolute = Path(os.path.normpath(absolute))
    try:
        return absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def is_local_dataset(dataset: str) -> bool:
    """A dataset folder on disk rather than a hub id: written as a path, as for models."""
    return dataset.startswith(("/", "./", "../", "~"))


def own_corpus_config(spec: Spec, name: str, root: Path) -> CorpusConfig:
    config = spec.corpora[name].stage_config(name)
    if isinstance(config, LocalTextCorpus):
        config = replace(config, path=local_dep(config.path, root))
    elif isinstance(config, HFDatasetCorpus) and is_local_dataset(config.dataset):
        config = replace(config, dataset=local_dep(config.dataset, root))
    return config


def own_corpus_deps(spec: Spec, name: str, config: CorpusConfig) -> tuple[str, ...]:
    """The local text or dataset folder a corpus reads (a hub dataset is named by its params, which DVC tracks)."""
    local = _local_input(spec, name, config)
    return (local[2],) if local else ()


def _local_input(spec: Spec, name: str, config: CorpusConfig) -> tuple[str, str, str] | None:
    """(key, path as written, path from the project root) of a corpus that reads from disk."""
    if isinstance(config, LocalTextCorpus):
        return "path", spec.corpora[name].path, config.path
    if isinstance(config, HFDatasetCorpus) and is_local_dataset(spec.corpora[name].dataset):
        return "dataset", spec.corpora[name].dataset, config.dataset
    return None


def check_own_corpora(specs: dict[str, Spec], root: Path) -> list[SpecError]:
    """Local paths that do not exist, and one corpus name declared differently by two specs compiled together."""
    errors: list[SpecError] = []
    seen: dict[str, tuple[str, CorpusConfig]] = {}
    for source in sorted(specs):
        spec = specs[source]
        for name in sorted(spec.corpora):
            config = own_corpus_config(spec, name, root)
            local = _local_input(spec, name, config)
            if local and not (root / local[2]).exists():
                errors.append(spec.error_at(("corpora", name, local[0]), f"'{local[1]}' does not exist (relative "
                                            f"paths start at the project root, {root.resolve()})"))
            first = seen.setdefault(name, (source, config))
            if first[1] != config:
                errors.append(spec.error_at(("corpora", name), f"corpus '{name}' is declared differently by "
                                            f"{first[0]}; give one of them another name"))
    return errors
