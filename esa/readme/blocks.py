"""Marked regions of a Markdown file: generated tables and prose whose numbers must come from cited files.

    <!-- esa:table criteria results/phase2/grades.json -->
    (written by `esa readme`)
    <!-- esa:end -->

    <!-- esa:cites results/phase3/grades.json specs/phase3.yaml -->
    Prose: every number in it must be found, at its quoted precision, in one of the cited files.
    <!-- esa:end -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = re.compile(r"^<!-- esa:(?P<kind>table|cites) (?P<args>.+?) -->$")
END = "<!-- esa:end -->"


class BlockError(Exception):
    """A malformed marker: names the file and line."""


@dataclass(frozen=True)
class Block:
    kind: str  # "table" or "cites"
    args: tuple[str, ...]
    line: int  # 1-based line of the opening marker
    start: int  # index of the first line inside the block
    end: int  # index of the closing marker's line
    body: str
    indent: str = ""  # the opening marker's indentation (a block inside a list item), given to written lines


def find_blocks(text: str, name: str = "README.md") -> list[Block]:
    lines = text.split("\n")
    blocks, open_at = [], None
    for i, line in enumerate(lines):
        match = OPEN.match(line.strip())
        if match:
            if open_at is not None:
                raise BlockError(f"{name}:{i + 1}: esa:{match['kind']} opens inside the block of line {open_at[0] + 1}")
            open_at = (i, match["kind"], tuple(match["args"].split()), line[:len(line) - len(line.lstrip())])
        elif line.strip() == END:
            if open_at is None:
                raise BlockError(f"{name}:{i + 1}: esa:end without an opening marker")
            at, kind, args, indent = open_at
            blocks.append(Block(kind, args, at + 1, at + 1, i, "\n".join(lines[at + 1:i]), indent))
            open_at = None
    if open_at is not None:
        raise BlockError(f"{name}:{open_at[0] + 1}: esa:{open_at[1]} is never closed by {END}")
    return blocks


def replace_bodies(text: str, bodies: dict[int, str]) -> str:
    """``text`` with the body of each block opened on line n replaced by ``bodies[n]``."""
    lines = text.split("\n")
    for block in sorted(find_blocks(text), key=lambda b: b.start, reverse=True):
        if block.line in bodies:
            lines[block.start:block.end] = bodies[block.line].split("\n")
    return "\n".join(lines)
