"""A tiny git + DVC project whose stages are one-line Python commands, for `esa submit` tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from esa.notebook.history import dvc_executable

# A diamond (a → b, c → d) and an independent stage e that runs in its own wdir.
DIAMOND = {
    "a": {"cmd": "print-to a.txt a", "outs": ["a.txt"]},
    "b": {"cmd": "concat b.txt a.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
    "c": {"cmd": "concat c.txt a.txt", "deps": ["a.txt"], "outs": ["c.txt"]},
    "d": {"cmd": "concat d.txt b.txt c.txt", "deps": ["b.txt", "c.txt"], "outs": ["d.txt"]},
    "e": {"cmd": "print-to e.txt e", "outs": ["e.txt"], "wdir": "side"},
}
# Two layers: a and e, then b.
TWO_LAYERS = {name: DIAMOND[name] for name in ("a", "b", "e")}

# `concat OUT IN…` writes the inputs' text; `print-to OUT TEXT` writes TEXT.
PYTHON = {
    "concat": "import sys; open(sys.argv[1], 'w').write(''.join(open(p).read() for p in sys.argv[2:]))",
    "print-to": "import sys; open(sys.argv[1], 'w').write(sys.argv[2] + chr(10))",
}


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def _command(cmd: str) -> str:
    program, *args = cmd.split()
    return " ".join([sys.executable, "-c", f'"{PYTHON[program]}"', *args])


def make_project(root: Path, stages: dict = DIAMOND, header: str = "") -> Path:
    """git init, dvc init and a dvc.yaml of ``stages`` (committed); nothing has run yet."""
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.email", "t@example.org")
    sh(root, "git", "config", "user.name", "t")
    sh(root, dvc_executable(), "init", "-q")
    (root / "side").mkdir(exist_ok=True)
    written = {name: {**stage, "cmd": _command(stage["cmd"])} for name, stage in stages.items()}
    (root / "dvc.yaml").write_text(header + yaml.safe_dump({"stages": written}, sort_keys=False))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "stages")
    return root
