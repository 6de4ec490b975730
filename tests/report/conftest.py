"""Shared by the page tests: render one of the project's report pages against a fixture project."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from esa.report.render import render_qmd

REPO = Path(__file__).resolve().parents[2]


def _render_page(project: Path, page: str) -> str:
    """Copy reports/<page>.qmd into `project`, render it offline there, return the HTML."""
    qmd = project / "reports" / f"{page}.qmd"
    qmd.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "reports" / f"{page}.qmd", qmd)
    out = render_qmd(qmd, project / "reports" / "_site" / f"{page}.html", project_root=project, use_quarto=False)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def render_page() -> Callable[[Path, str], str]:
    return _render_page
