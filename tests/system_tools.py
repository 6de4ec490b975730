"""Skip markers for tests that need a program outside the virtual environment: they skip with the reason printed
on a machine without it, and never error at collection."""

from __future__ import annotations

import shutil

import pytest


def needs(program: str, why: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"{program} not on PATH: {why}")


needs_git = needs("git", "DVC pipelines and the research log read git history (apt install git)")
