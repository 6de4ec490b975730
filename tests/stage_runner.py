"""Run a stage program as DVC would, and check that every module of this package it loaded is among the code
deps the compiler derives for it (esa.compile.code_deps): a stage that imports a module its deps miss would not
re-run when that module changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from esa.compile.code_deps import code_deps, module_file

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false"}


def loaded_files(importtime_log: str, root: Path = REPO) -> set[str]:
    """Files of this package named in `python -X importtime` output (one line per module imported)."""
    files = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            if module == "esa" or module.startswith("esa."):
                path = module_file(module, root)
                if path is not None:
                    files.add(path.relative_to(root).as_posix())
    return files


def run_stage(cwd: Path, program: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``program`` (relative to the repository, e.g. stages/score.py) in ``cwd``; on success, assert its loaded
    modules are within its derived code deps. stderr comes back without the import-time lines."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(REPO / program), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    log = proc.stderr
    proc.stderr = "".join(line for line in log.splitlines(keepends=True) if not line.startswith("import time:"))
    if proc.returncode == 0:
        missing = loaded_files(log) - set(code_deps(program, root=REPO))
        assert not missing, f"{program} loaded modules its derived code deps miss: {sorted(missing)}"
    return proc


def tiny_project(root: Path, tiny_corpus: Path, ref_tiny: Path, specs: dict[str, str]) -> Path:
    """A project in ``root`` as a checkout holds it: the code (linked), the built tiny corpus and ref-tiny where
    their stages would write them, and the given spec files."""
    for name in ("esa", "stages"):  # the code files stages depend on
        (root / name).symlink_to(REPO / name)
    (root / "data").mkdir()
    (root / "data/stdlib-tiny").symlink_to(tiny_corpus)
    (root / "models").mkdir()
    (root / "models/ref-tiny").symlink_to(ref_tiny)
    for path, text in specs.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root
