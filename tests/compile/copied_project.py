"""A project copied into a temporary folder (the stage programs and the package, so compile rules can read their
code deps) with the given specs, and the one-line error `esa compile` gives for a spec that cannot work."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from esa.cli import main


def copied_project(tmp_path: Path, repo_root: Path, specs: dict[str, str] | None = None) -> Path:
    for folder in ("stages", "esa"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "specs").mkdir()
    for name, text in (specs or {}).items():
        (tmp_path / name).write_text(text)
    return tmp_path


def compile_error(root: Path, monkeypatch, text: str, name: str = "specs/p5.yaml") -> str:
    """Write ``text`` to ``name``, compile it, and return the single stderr line (exit code 2, no traceback)."""
    (root / name).write_text(text)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["compile", name])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    return line.replace(f"{root}/", "")
