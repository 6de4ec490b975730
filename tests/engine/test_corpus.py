from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from esa.engine.data.corpus import SPLITS, build_corpus, check_disjoint, load_split, split_of, stdlib_documents
from esa.registry import CORPORA


def test_build_is_byte_identical(tiny_corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(CORPORA["stdlib-tiny"], again)
    for name in [f"{s}.jsonl" for s in SPLITS] + ["splits.json"]:
        assert (again / name).read_bytes() == (tiny_corpus / name).read_bytes(), name


def test_splits_disjoint_by_id_and_content(tiny_corpus):
    summary = json.loads((tiny_corpus / "splits.json").read_text())
    assert summary["disjoint"] is True
    ids, hashes = {}, {}
    for split in SPLITS:
        docs = load_split(tiny_corpus, split)
        assert docs, split
        assert [d["id"] for d in docs] == sorted(d["id"] for d in docs)
        assert summary[split]["n_docs"] == len(docs)
        assert summary[split]["n_bytes"] == sum(len(d["text"].encode()) for d in docs)
        digest = hashlib.sha256((tiny_corpus / f"{split}.jsonl").read_bytes()).hexdigest()
        assert summary[split]["sha256"] == digest
        for doc in docs:
            h = hashlib.sha256(doc["text"].encode()).hexdigest()
            assert ids.setdefault(doc["id"], split) == split
            assert hashes.setdefault(h, split) == split
    assert len(ids) == sum(summary[s]["n_docs"] for s in SPLITS)


def test_byte_caps_respected(tiny_corpus):
    cfg = CORPORA["stdlib-tiny"]
    summary = json.loads((tiny_corpus / "splits.json").read_text())
    assert 0 < summary["train"]["n_bytes"] <= cfg.max_train_bytes
    assert 0 < summary["calibration"]["n_bytes"] <= cfg.max_calibration_bytes
    assert 0 < summary["evaluation"]["n_bytes"] <= cfg.max_evaluation_bytes


def test_documents_exclude_tests_and_duplicates():
    docs = stdlib_documents()
    assert any(i.startswith("pydoc:") for i in docs)
    assert "argparse.py" in docs
    assert not any(part in ("test", "tests", "site-packages", "idlelib") for i in docs for part in i.split("/")[:-1])
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in docs.values()]
    assert len(hashes) == len(set(hashes))


def test_split_assignment_depends_only_on_id():
    cfg = CORPORA["stdlib"]
    ids = sorted(stdlib_documents())
    first = {i: split_of(i, cfg) for i in ids}
    assert {i: split_of(i, cfg) for i in reversed(ids)} == first
    counts = {s: sum(v == s for v in first.values()) for s in SPLITS}
    # Each held-out split gets roughly its configured fraction of several hundred documents.
    assert counts["calibration"] > 0.5 * cfg.calibration_fraction * len(ids)
    assert counts["evaluation"] > 0.5 * cfg.evaluation_fraction * len(ids)
    moved = replace(cfg, evaluation_fraction=cfg.evaluation_fraction + 0.1)
    assert sum(split_of(i, moved) == "evaluation" for i in ids) > counts["evaluation"]


def test_check_disjoint_raises_on_overlap():
    entry = {"id": "a.py", "sha256": "x"}
    manifest = {"train": {"docs": [entry]}, "calibration": {"docs": []}, "evaluation": {"docs": [entry]}}
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(manifest)
    clash = {"train": {"docs": [{"id": "a.py", "sha256": "x"}]}, "calibration": {"docs": []},
             "evaluation": {"docs": [{"id": "b.py", "sha256": "x"}]}}
    with pytest.raises(ValueError, match="sha256"):
        check_disjoint(clash)


def test_load_split_rejects_unknown(tiny_corpus):
    with pytest.raises(ValueError):
        load_split(tiny_corpus, "validation")
