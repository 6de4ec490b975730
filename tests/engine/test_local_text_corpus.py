"""Corpora from the user's own text: a folder, a .txt file and a .jsonl file become documents that go through
the same document-disjoint, hashed, byte-capped splits as the registry's corpora."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from esa.engine.data.corpus import SPLITS, collapse_duplicates, load_split, write_splits
from esa.engine.data.local_text import TextSourceError, local_documents, split_text
from esa.configs import LocalTextCorpus

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def paragraph(i: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8 + i % 5)) + f" number {i}."


@pytest.fixture
def text_sources(tmp_path):
    """The same 40 documents as a folder (plus a hidden and a binary file), a .txt file and a .jsonl file."""
    docs = [paragraph(i) for i in range(40)]
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    for i, text in enumerate(docs):
        (folder / ("sub" if i % 2 else "") / f"doc{i:02d}.txt").write_text(text + "\n")
    (folder / ".hidden.txt").write_text("not a document\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "image.bin").write_bytes(b"\x89PNG\0\0\x01")
    (tmp_path / "notes.txt").write_text("\n\n  \n".join(docs) + "\n")
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps({"key": f"k{i}", "body": t}) + "\n"
                                                  for i, t in enumerate(docs)))
    return tmp_path, docs


def corpus(path: str, **fields) -> LocalTextCorpus:
    return LocalTextCorpus(name="mine", path=path, calibration_fraction=0.25, evaluation_fraction=0.25, **fields)


@pytest.mark.parametrize(("path", "fields", "fmt"), [
    ("notes", {}, "folder"),
    ("notes.txt", {}, "txt"),
    ("notes.jsonl", {"text_field": "body"}, "jsonl"),
    ("notes.jsonl", {"text_field": "body", "id_field": "key"}, "jsonl"),
])
def test_every_source_yields_the_same_documents(text_sources, path, fields, fmt):
    root, docs = text_sources
    found, source = local_documents(corpus(path, **fields), root)
    assert sorted(t.strip() for t in found.values()) == sorted(docs)
    assert source["source"]["format"] == fmt
    if fields.get("id_field"):
        assert sorted(found) == sorted(f"k{i}" for i in range(40))
    if fmt == "folder":
        assert "sub/doc01.txt" in found and "doc00.txt" in found
        assert source["source"]["skipped"] == {"binary": ["image.bin"], "hidden": [".git/HEAD", ".hidden.txt"]}


@pytest.mark.parametrize("path", ["notes", "notes.txt", "notes.jsonl"])
def test_splits_are_document_disjoint_hashed_and_capped(text_sources, tmp_path, path):
    root, _ = text_sources
    cfg = corpus(path, text_field="body")
    docs, source = local_documents(cfg, root)
    summary = write_splits(collapse_duplicates(docs), cfg, tmp_path / "out", source)
    written = json.loads((tmp_path / "out/splits.json").read_text())
    assert written == json.loads(json.dumps(summary)) and written["disjoint"] is True
    assert written["source"]["kind"] == "local_text"
    seen: dict[str, str] = {}
    for split in SPLITS:
        rows = load_split(tmp_path / "out", split)
        assert rows, split  # 40 documents: every split gets some
        data = (tmp_path / "out" / f"{split}.jsonl").read_bytes()
        assert written[split]["sha256"] == hashlib.sha256(data).hexdigest()
        assert [d["sha256"] for d in written[split]["docs"]] == [
            hashlib.sha256(r["text"].encode()).hexdigest() for r in rows]
        for row in rows:
            assert seen.setdefault(row["id"], split) == split
    assert len(seen) == 40

    capped = replace(cfg, max_train_bytes=200, max_calibration_bytes=120, max_evaluation_bytes=1)
    summary = write_splits(collapse_duplicates(docs), capped, tmp_path / "capped", source)
    assert 0 < summary["train"]["n_bytes"] <= 200 and 0 < summary["calibration"]["n_bytes"] <= 120
    assert summary["evaluation"]["n_docs"] == 0


def test_editing_one_document_moves_no_other(text_sources):
    """Ids come from the file name and the text (or the folder path), never from a position in the file."""
    root, docs = text_sources
    before, _ = local_documents(corpus("notes.txt"), root)
    (root / "notes.txt").write_text("a new first document.\n\n" + "\n\n".join(docs[:5] + ["edited."] + docs[6:]))
    after, _ = local_documents(corpus("notes.txt"), root)
    assert len(set(before) - set(after)) == 1 and len(set(after) - set(before)) == 2


def test_txt_separator_and_blank_line_runs():
    assert split_text("one\nstill one\n\n\n \ntwo\r\n\r\nthree\n", "") == ["one\nstill one", "two", "three"]
    text = "first\n\nparagraph\n---\nsecond\n---  \n\n---\nthird"
    assert split_text(text, "---") == ["first\n\nparagraph", "second", "third"]


def test_glob_selects_the_documents_of_a_folder(text_sources):
    root, _ = text_sources
    found, _ = local_documents(corpus("notes", glob="sub/*.txt"), root)
    assert sorted(found) == [f"sub/doc{i:02d}.txt" for i in range(1, 40, 2)]


@pytest.mark.parametrize(("write", "fields", "message"), [
    (None, {}, "path: 'missing' does not exist"),
    ('{"text": "a"}\nnot json\n', {"format": "jsonl"}, "mine.jsonl:2: not a JSON object"),
    ('{"body": "a"}\n', {"format": "jsonl"}, "mine.jsonl:1: no string field 'text' (text_field)"),
    ('{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n', {"format": "jsonl", "id_field": "id"},
     "mine.jsonl:2: duplicate id '1'"),
    (b"caf\xe9\n", {}, "not UTF-8 text"),
    ("\n\n", {}, "holds no documents"),
])
def test_bad_text_is_one_clear_error(tmp_path, write, fields, message):
    path = "missing" if write is None else "mine.jsonl"
    if write is not None:
        (tmp_path / path).write_bytes(write if isinstance(write, bytes) else write.encode())
    with pytest.raises(TextSourceError) as err:
        local_documents(corpus(path, **fields), tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
