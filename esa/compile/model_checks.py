"""Checks of the models runs name, made when compiling (no model is loaded, no network is used).

Errors: a local checkpoint folder that is not there, or a hub id that also names a folder of the project (the
stage's from_pretrained would load the folder, not the hub model). Warning: a hub id without `revision:`, whose
stages record the commit they loaded but re-run on nothing when the hub moves the id.
"""

from __future__ import annotations

from pathlib import Path

from esa.spec import Spec, SpecError
from esa.spec.model_source import is_hub_id, is_local_path, local_location


def check_models(spec: Spec, root: Path) -> tuple[list[SpecError], list[SpecError]]:
    """(errors, warnings) about the `model:` of every run of ``spec``; paths are relative to ``root``."""
    errors: dict[tuple, SpecError] = {}
    warnings: dict[tuple, SpecError] = {}

    def add(found: dict, run_id: str, message: str) -> None:
        error = spec.error_at_run(run_id, "model", message)
        found.setdefault((error.line, error.col, error.message), error)  # a default is reported once

    for run in spec.runs:
        if not hasattr(run, "model"):  # runs that read other runs' results load no model
            continue
        if is_local_path(run.model):
            folder = Path(root) / local_location(run.model)
            if not folder.is_dir():
                what = "is a file, not a saved model's folder" if folder.exists() else "does not exist"
                add(errors, run.id, f"local model '{run.model}' {what} (relative paths start at the project root "
                                    f"{Path(root).resolve()})")
        elif is_hub_id(run.model):
            if (Path(root) / run.model).is_dir():
                add(errors, run.id, f"'{run.model}' is a hub id but also a folder of this project; write "
                                    f"'./{run.model}' to load the folder")
            elif run.revision is None:
                add(warnings, run.id, f"hub model '{run.model}' is not pinned: set `revision:` to a commit hash "
                                      f"so a change on the hub cannot change the run unnoticed")
    return list(errors.values()), list(warnings.values())
