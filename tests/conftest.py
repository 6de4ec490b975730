import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec text to tmp_path/specs/<name> and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / "specs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


# The tiny corpus and the ref-tiny model, built once per test session and shared by every folder that needs them
# (tests/engine, tests/kinds).


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from esa.engine.data.corpus import build_corpus
    from esa.registry import CORPORA

    out = tmp_path_factory.mktemp("corpus") / "stdlib-tiny"
    build_corpus(CORPORA["stdlib-tiny"], out)
    return out


@pytest.fixture(scope="session")
def ref_tiny(tiny_corpus, tmp_path_factory) -> Path:
    from esa.engine.models.reference import build_reference
    from esa.registry import REFERENCE_MODELS

    out = tmp_path_factory.mktemp("models") / "ref-tiny"
    build_reference(REFERENCE_MODELS["ref-tiny"], tiny_corpus, out)
    return out
