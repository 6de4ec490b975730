"""Documents from the user's own text files: a folder, a ``.txt`` file or a ``.jsonl`` file.

A document is the unit splits and seeds are disjoint by. Ids that are not given come from the file name plus a
hash of the text, so editing or adding one document never moves another between splits.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from esa.configs import LocalTextCorpus

FORMATS = ("folder", "txt", "jsonl")
BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")  # one or more blank (or whitespace-only) lines
BINARY_PROBE = 8192  # bytes read to spot a NUL, as git does


class TextSourceError(ValueError):
    """Text that cannot be read as documents: a missing path, a bad row, a duplicate id."""


@dataclass
class LocalDocuments:
    docs: dict[str, str]  # id -> text
    files: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> files (folder only)

    def source(self, cfg: LocalTextCorpus, fmt: str) -> dict:
        """What splits.json records about where the documents came from."""
        return {"source": {"kind": "local_text", "path": cfg.path, "format": fmt, "files": self.files,
                           "skipped": {reason: sorted(files) for reason, files in self.skipped.items()}}}


def format_of(cfg: LocalTextCorpus, path: Path) -> str:
    if cfg.format != "auto":
        if cfg.format not in FORMATS:
            raise TextSourceError(f"format: unknown format '{cfg.format}' (known: auto, {', '.join(FORMATS)})")
        return cfg.format
    if path.is_dir():
        return "folder"
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "txt"


def _hash_id(prefix: str, text: str) -> str:
    return f"{prefix}#{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextSourceError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def folder_documents(root: Path, pattern: str) -> LocalDocuments:
    """Each regular file matching ``pattern`` is one document, id = its path relative to the folder. Hidden files
    and folders, binary files (a NUL byte) and files that are not UTF-8 are skipped and listed."""
    out = LocalDocuments({})
    skipped: dict[str, list[str]] = {"hidden": [], "binary": [], "not_utf8": [], "empty": []}
    paths = sorted(p for p in root.glob(pattern) if p.is_file())
    for path in tqdm(paths, desc="reading files", unit="file", disable=len(paths) < 1000):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            skipped["hidden"].append(rel)
            continue
        data = path.read_bytes()
        if b"\0" in data[:BINARY_PROBE]:
            skipped["binary"].append(rel)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped["not_utf8"].append(rel)
            continue
        if not text.strip():
            skipped["empty"].append(rel)
            continue
        out.docs[rel] = text
        out.files += 1
    out.skipped = {reason: files for reason, files in skipped.items() if files}
    return out


def split_text(text: str, separator: str) -> list[str]:
    """The documents of one text: parts between separator lines (or blank-line runs), stripped, empty ones dropped."""
    text = text.replace("\r\n", "\n")
    if separator:
        parts = re.split(rf"(?m)^{re.escape(separator)}[ \t]*$\n?", text)
    else:
        parts = BLANK_LINES.split(text)
    return [part.strip("\n") for part in parts if part.strip()]


def txt_documents(path: Path, separator: str) -> LocalDocuments:
    docs: dict[str, str] = {}
    for part in split_text(_read_utf8(path), separator):
        docs[_hash_id(path.name, part)] = part  # an exact duplicate keeps one id: it is collapsed later anyway
    return LocalDocuments(docs, files=1)


def jsonl_documents(path: Path, text_field: str, id_field: str) -> LocalDocuments:
    """One document per row: its ``text_field``; id = the row's ``id_field`` (unique) or a hash of the text."""
    docs: dict[str, str] = {}
    for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TextSourceError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise TextSourceError(f"{where}: no string field '{text_field}' (text_field)")
        text = row[text_field]
        if not text.strip():
            continue
        if id_field:
            if id_field not in row:
                raise TextSourceError(f"{where}: no field '{id_field}' (id_field)")
            doc_id = str(row[id_field])
            if doc_id in docs:
                raise TextSourceError(f"{where}: duplicate id '{doc_id}' (id_field '{id_field}')")
        else:
            doc_id = _hash_id(path.name, text)
        docs[doc_id] = text
    return LocalDocuments(docs, files=1)


def local_documents(cfg: LocalTextCorpus, root: Path = Path(".")) -> tuple[dict[str, str], dict]:
    """(documents id -> text, the source record for splits.json); ``cfg.path`` is relative to ``root``."""
    path = root / Path(cfg.path).expanduser()
    if not cfg.path or not path.exists():
        raise TextSourceError(f"path: '{cfg.path}' does not exist (relative paths start at the project root)")
    fmt = format_of(cfg, path)
    if (fmt == "folder") != path.is_dir():
        raise TextSourceError(f"path: '{cfg.path}' is {'a folder' if path.is_dir() else 'a file'}, "
                              f"format is {fmt}")
    if fmt == "folder":
        found = folder_documents(path, cfg.glob)
    elif fmt == "txt":
        found = txt_documents(path, cfg.separator)
    else:
        found = jsonl_documents(path, cfg.text_field, cfg.id_field)
    if not found.docs:
        raise TextSourceError(f"path: '{cfg.path}' holds no documents ({fmt})")
    return found.docs, found.source(cfg, fmt)
