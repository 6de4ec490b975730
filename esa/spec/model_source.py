"""What a spec's `model:` names: a project model (embedded, instruct or packaged), a local checkpoint folder or a
hub id. The rule is by spelling alone, so a spec means the same on every machine:

- a **local path** starts with ``/``, ``./``, ``../`` or ``~`` (relative paths are relative to the project root,
  the folder holding dvc.yaml);
- a **hub id** is ``org/name`` (one slash, neither end empty) and is never looked up on disk.
"""

from __future__ import annotations

import os
import posixpath

from esa.registry import INSTRUCT_MODELS, PACKAGED_MODELS, REFERENCE_MODELS

LOCAL_PREFIXES = ("/", "./", "../", "~")


def is_project_model(name: str) -> bool:
    return name in REFERENCE_MODELS or name in INSTRUCT_MODELS or name in PACKAGED_MODELS


def is_local_path(name: str) -> bool:
    return not is_project_model(name) and name.startswith(LOCAL_PREFIXES)


def is_hub_id(name: str) -> bool:
    if is_project_model(name) or is_local_path(name):
        return False
    org, _, repo = name.partition("/")
    return bool(org) and bool(repo) and "/" not in repo


def local_location(name: str) -> str:
    """The path a stage loads and DVC tracks: ``~`` expanded, ``.``/``..`` folded, relative paths kept relative
    (to the project root) so dvc.yaml stays the same on every checkout."""
    path = os.path.expanduser(name)
    return posixpath.normpath(path.replace(os.sep, "/"))
