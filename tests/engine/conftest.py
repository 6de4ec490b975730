"""Shared fixtures: the tiny corpus and the ref-xs model, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from esa.engine.data.corpus import build_corpus  # noqa: E402
from esa.engine.models.reference import build_reference  # noqa: E402
from esa.registry import CORPORA, REFERENCE_MODELS  # noqa: E402


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "stdlib-tiny"
    build_corpus(CORPORA["stdlib-tiny"], out)
    return out


@pytest.fixture(scope="session")
def ref_xs(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "ref-xs"
    build_reference(REFERENCE_MODELS["ref-xs"], tiny_corpus, out)
    return out
