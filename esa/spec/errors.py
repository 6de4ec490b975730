"""Spec errors that know where they are: ``file:line:col: path: message``."""

from __future__ import annotations

from dataclasses import dataclass


def format_path(path: tuple) -> str:
    """('runs', 0, 'seeds') -> 'runs[0].seeds'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


@dataclass(frozen=True)
class SpecError:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    path: tuple
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {format_path(self.path)}: {self.message}"


class SpecErrors(Exception):
    """One or more spec errors; ``str()`` is one line per error."""

    def __init__(self, errors: list[SpecError]):
        self.errors = sorted(errors, key=lambda e: (e.line, e.col, format_path(e.path)))
        super().__init__("\n".join(str(e) for e in self.errors))
