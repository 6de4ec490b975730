"""Write one phase's exhibits to a folder: a file per table, figures/ (SVG + PNG) and an index, with progress."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from esa.export import latex, markdown
from esa.export.exhibits import Exhibits, ExportError, phase_name
from esa.export.phases import build
from esa.export.figures import save_figure

FORMATS = {"latex": (latex, ".tex", "exhibits.tex"), "markdown": (markdown, ".md", "README.md")}


@dataclass
class Written:
    out: Path
    index: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def safe_name(name: str) -> str:
    # File names and LaTeX labels: run ids come from specs, so keep only characters safe in both.
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "exhibit"


def _safe(exhibits: Exhibits) -> Exhibits:
    tables = [type(t)(safe_name(t.name), t.caption, t.frame) for t in exhibits.tables]
    figures = [type(f)(safe_name(f.name), f.caption, f.chart) for f in exhibits.figures]
    return Exhibits(exhibits.phase, tables, figures)


def write_exhibits(exhibits: Exhibits, out: Path, fmt: str, progress: bool | None = None) -> Written:
    """Tables in ``fmt`` (latex or markdown), every figure as SVG and PNG, and the index file.

    ``progress``: None shows a bar only on a terminal (figures take a second or two each).
    """
    module, suffix, index_name = FORMATS[fmt]
    exhibits = _safe(exhibits)
    out.mkdir(parents=True, exist_ok=True)
    written = Written(out, out / index_name)
    steps = len(exhibits.tables) + len(exhibits.figures)
    disable = None if progress is None else not progress  # tqdm: None = only on a terminal
    with tqdm(total=steps, desc=f"export {exhibits.phase}", unit="exhibit", disable=disable, leave=False) as bar:
        for t in exhibits.tables:
            bar.set_postfix_str(t.name)
            path = out / f"{t.name}{suffix}"
            path.write_text(module.table(exhibits.phase, t), encoding="utf-8")
            written.tables.append(path)
            bar.update()
        for f in exhibits.figures:
            bar.set_postfix_str(f.name)
            written.figures.extend(save_figure(f.chart, out / "figures", f.name))
            bar.update()
    written.index.write_text(module.index(exhibits), encoding="utf-8")
    return written


def export_phase(phase: str, fmt: str, out: Path | None = None, root: Path = Path("."),
                 progress: bool | None = None) -> Written:
    """Build ``phase``'s exhibits from ``root``'s results and write them (default ``root/exports/<phase>``)."""
    name = phase_name(phase)
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    exhibits = build(name, root)
    return write_exhibits(exhibits, Path(out) if out else Path(root) / "exports" / name, fmt, progress)
