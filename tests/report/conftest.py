"""Shared by the page tests: render one of the project's report pages against a fixture project."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from esa.report.browser import SiteCheckError, find_chromium
from esa.report.render import render_qmd

REPO = Path(__file__).resolve().parents[2]


def _render_page(project: Path, page: str, spec: str | None = None) -> str:
    """Copy reports/<page>.qmd into `project`, render it offline there, return the HTML; with `spec`, the page of
    that spec (the Quarto parameter SPEC set, as `esa report` renders a variant)."""
    qmd = project / "reports" / f"{page}.qmd"
    qmd.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "reports" / f"{page}.qmd", qmd)
    out = render_qmd(qmd, project / "reports" / "_site" / f"{spec or page}.html", project_root=project,
                     use_quarto=False, params={"SPEC": spec} if spec else None)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def render_page() -> Callable[..., str]:
    return _render_page


def chromium_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        find_chromium()
    except SiteCheckError as exc:
        return f"{exc} (apt install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium to drive; tests asking for it are skipped, with the reason, on a machine without one.

    Looked up when a test runs, not at import: a missing browser must never break collection.
    """
    reason = chromium_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return find_chromium()
