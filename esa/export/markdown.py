"""Markdown exhibits: GitHub-flavoured pipe tables, one file per table, and a README.md that lists them all."""

from __future__ import annotations

import re
from collections.abc import Sequence

from esa.export.exhibits import Exhibits, Table, cells
from esa.export.figures import PNG_PPI, png_scale_note

_CODE = re.compile(r"(`[^`]+`)")
# Backslash-escapes of the ASCII punctuation that would end a cell (|) or start markup inside one.
_SPECIAL = re.compile(r"([\\|*_`<>\[\]])")


def escape(text: str) -> str:
    """Text for a Markdown table cell or caption; `code` spans are kept (with their pipes escaped)."""
    parts = _CODE.split(" ".join(str(text).split()))
    return "".join(p.replace("|", r"\|") if i % 2 else _SPECIAL.sub(r"\\\1", p) for i, p in enumerate(parts))


def pipe_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """A pipe table; numeric columns right-aligned. An empty header becomes a blank cell."""
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(escape(v) or " " for v in values) + " |"

    rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def table(phase: str, t: Table) -> str:
    headers, rows, numeric = cells(t.frame)
    return f"<!-- {phase}: {t.name}. Written by esa export. -->\n\n**{escape(t.caption)}**\n\n" \
           f"{pipe_table(headers, rows, numeric)}\n"


def index(exhibits: Exhibits) -> str:
    """README.md: every table (linked) and every figure (embedded SVG, linked PNG)."""
    title = exhibits.phase.replace("phase", "Phase ")
    lines = [f"# {title} exhibits", "", f"Written by `esa export {exhibits.phase} --format markdown`.", ""]
    if exhibits.tables:
        lines += ["## Tables", ""]
        lines += [f"- [{t.name}]({t.name}.md): {escape(t.caption)}" for t in exhibits.tables]
        lines.append("")
    if exhibits.figures:
        lines += ["## Figures", "", f"Each figure is an SVG and a PNG at {PNG_PPI} ppi ({png_scale_note()}).", ""]
        for f in exhibits.figures:
            lines += [f"### {f.name}", "", f"![{escape(f.caption)}](figures/{f.name}.svg)", "",
                      f"{escape(f.caption)} [SVG](figures/{f.name}.svg) · [PNG](figures/{f.name}.png)", ""]
    return "\n".join(lines)
