"""Figures as SVG and print-resolution PNG, drawn by vl-convert from the same Vega-Lite spec (and the same
vl-convert call) as the report pages' inline charts (esa.report.charts.chart_svg), in the reports' theme.

Resolution: vl-convert draws 72 chart units per inch (1 unit = 1 pt) and multiplies the pixels by
``ppi / 72 × scale``. At ``PNG_PPI = 300`` and ``PNG_SCALE = 1`` a PNG has 300 / 72 ≈ 4.17 pixels per SVG unit
(over the ≥ 3× a 300-dpi print needs at 72–96 units per inch) and its pHYs header says 300 dpi, so it prints
at the SVG's size at 300 dpi.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import vl_convert

PNG_PPI = 300
PNG_SCALE = 1.0


def png_scale_note() -> str:
    return f"{PNG_SCALE * PNG_PPI / 72:.2f} pixels per SVG unit, {PNG_PPI} dpi at the SVG's size"


def save_figure(chart: alt.TopLevelMixin, folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``folder/name.svg`` and ``folder/name.png``; call ``esa.report.charts.setup()`` first (theme)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = chart.to_dict()  # carries the enabled theme's config, as on the page
    svg, png = folder / f"{name}.svg", folder / f"{name}.png"
    svg.write_text(vl_convert.vegalite_to_svg(spec), encoding="utf-8")
    png.write_bytes(vl_convert.vegalite_to_png(spec, scale=PNG_SCALE, ppi=PNG_PPI))
    return svg, png
