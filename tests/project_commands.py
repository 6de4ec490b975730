"""Commands run in a test project as a user would run them: this interpreter's esa/dvc first on PATH, offline, no
analytics, a git identity for commits; a failure shows the command's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV = {"DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run(cmd: list[str], cwd: Path, ok: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``; with ``ok``, assert it succeeded."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **ENV}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc
