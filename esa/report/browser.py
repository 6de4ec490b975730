"""Open every page of a rendered report site in headless Chromium and check it really works offline.

Static checks (render.external_refs) read the HTML; this one looks at what a browser shows: no console
errors, no network request, a non-blank page, and every vega chart drawn. Playwright drives the system
Chromium (no browser download): one browser per run, one page at a time.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from PIL import Image, ImageChops

# Chromium flags for an offline machine: without them it retries background connections and logs them.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV_CHROMIUM = "ESA_CHROMIUM"
# A page declares how many charts it shows; several tags add up (a cell may emit one per chart).
META_CHARTS = "esa-charts"
# vega's SVG root. Its data-mark groups carry class "marks" too, hence the tag name.
CHART_SELECTOR = "svg.marks"
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
VIEWPORT_W, VIEWPORT_H = 1280, 900
INK_TOLERANCE = 24  # a channel differing from the background by more than this is ink (not antialias haze)
PAGE_MIN_INK = 0.001  # a short text-only page is ~0.5% ink at 1280x900; an empty one is 0
CHART_MIN_INK = 0.01  # axes alone are several percent of a chart's box
LOAD_TIMEOUT_MS = 30_000

# Charts (outermost svg.marks), their box in document coordinates, and how many data marks they draw:
# shapes with a non-empty box inside vega's role-mark groups (axes, legends and background don't count).
_PROBE_JS = """
(sel) => {
  const shapes = 'path, rect, line, circle, ellipse, polygon, polyline, text, image';
  const roots = Array.from(document.querySelectorAll(sel)).filter(
    (el) => !(el.parentElement && el.parentElement.closest(sel)));
  const charts = roots.map((svg) => {
    const r = svg.getBoundingClientRect();
    let marks = 0;
    for (const s of svg.querySelectorAll('.role-mark :is(' + shapes + ')')) {
      const b = s.getBBox();
      if (b.width > 0 || b.height > 0) marks++;
    }
    return {x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height, marks};
  });
  const meta = Array.from(document.querySelectorAll('meta[name="%s"]')).map((m) => m.content);
  return {charts, meta};
}
""".replace("%s", META_CHARTS)


class SiteCheckError(RuntimeError):
    """The check cannot run at all: no site, no pages, no browser."""


@dataclass
class PageCheck:
    page: str
    ok: bool
    n_charts: int
    problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None  # only when a screenshots folder was given
    expected_charts: int | None = None  # from <meta name="esa-charts">, if the page declares it


def find_chromium(chromium: str | None = None) -> str:
    """The browser to drive: the argument, $ESA_CHROMIUM, or the first Chromium on PATH."""
    candidates = [chromium] if chromium else [os.environ.get(ENV_CHROMIUM) or "", *CHROMIUM_NAMES]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    raise SiteCheckError(f"chromium not found ({chromium or ', '.join(CHROMIUM_NAMES)}); set {ENV_CHROMIUM}")


def site_pages(site_dir: Path) -> list[Path]:
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        raise SiteCheckError(f"site directory not found: {site_dir}")
    pages = sorted(site_dir.glob("*.html"))
    if not pages:
        raise SiteCheckError(f"no *.html pages in {site_dir}")
    return pages


def ink_fraction(img: Image.Image) -> float:
    """Share of pixels that differ from the most common colour (the background); 0 for a uniform image."""
    rgb = img.convert("RGB")
    total = rgb.width * rgb.height
    if total == 0:
        return 0.0
    colors = rgb.getcolors(total) or [(total, (255, 255, 255))]
    background = max(colors, key=lambda c: c[0])[1]
    r, g, b = ImageChops.difference(rgb, Image.new("RGB", rgb.size, cast(tuple[int, ...], background))).split()
    hist = ImageChops.lighter(ImageChops.lighter(r, g), b).histogram()
    return sum(hist[INK_TOLERANCE + 1 :]) / total


def check_site(
    site_dir: Path,
    *,
    chromium: str | None = None,
    screenshots: Path | None = None,
    min_charts: Mapping[str, int] | None = None,
) -> list[PageCheck]:
    """Check every *.html page of site_dir in one headless Chromium.

    screenshots: folder to keep a full-page PNG per page (<stem>.png).
    min_charts: page name (file name or stem) -> least number of charts, for pages known to have charts
    but declaring no exact count with <meta name="esa-charts" content="N">.
    """
    pages = site_pages(site_dir)
    executable = find_chromium(chromium)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise SiteCheckError(f"playwright is not installed ({exc.name}); pip install playwright") from None
    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS))
        except PlaywrightError as exc:
            raise SiteCheckError(f"cannot start {executable}: {str(exc).splitlines()[0]}") from None
        try:
            context = browser.new_context(viewport={"width": VIEWPORT_W, "height": VIEWPORT_H}, device_scale_factor=1)
            context.route("**/*", _local_only)
            return [_check_page(context, page, screenshots, min_charts or {}) for page in pages]
        finally:
            browser.close()


def _local_only(route: Any) -> None:
    # Block rather than fetch: a page that works only online must fail here, on any machine.
    if urlsplit(route.request.url).scheme in LOCAL_SCHEMES:
        route.continue_()
    else:
        route.abort("blockedbyclient")


def _check_page(context: Any, html: Path, shots: Path | None, min_charts: Mapping[str, int]) -> PageCheck:
    from playwright.sync_api import Error as PlaywrightError

    problems: list[str] = []
    console: list[tuple[str, str]] = []  # (text, url of the resource it is about)
    remote: list[str] = []
    page = context.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            console.append((msg.text, msg.location.get("url", "")))

    def on_request(req: Any) -> None:
        if urlsplit(req.url).scheme not in LOCAL_SCHEMES:
            remote.append(req.url)

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"uncaught JS error: {_js_error(e)}"))
    page.on("request", on_request)
    page.on("websocket", lambda ws: remote.append(ws.url))
    try:
        page.goto(html.resolve().as_uri(), wait_until="load")
        page.evaluate("document.fonts.ready.then(() => true)")  # text drawn in its final font
        probe: dict[str, Any] = page.evaluate(_PROBE_JS, CHART_SELECTOR)
        png = page.screenshot(full_page=True, animations="disabled")
    except PlaywrightError as exc:
        page.close()
        return PageCheck(html.name, False, 0, [*problems, f"cannot load page: {_first_line(exc)}"])
    page.close()

    problems += [f"network request: {url[:120]}" for url in dict.fromkeys(remote)]
    # A blocked request also logs "Failed to load resource"; it is reported once above.
    problems += [f"console error: {text[:200]}" for text, url in console if url not in remote]

    shot = Image.open(io.BytesIO(png))
    ink = ink_fraction(shot)
    if ink < PAGE_MIN_INK:
        problems.append(f"screenshot is blank ({ink:.2%} non-background pixels)")
    charts = probe["charts"]
    for i, chart in enumerate(charts, 1):
        problems += _chart_problems(i, chart, shot)

    expected = _expected_charts(probe["meta"], problems)
    least = min_charts.get(html.name, min_charts.get(html.stem))
    if expected is not None and len(charts) != expected:
        problems.append(f"{len(charts)} charts, page declares {expected}")
    elif expected is None and least is not None and len(charts) < least:
        problems.append(f"{len(charts)} charts, expected at least {least}")

    path = None
    if shots is not None:
        path = Path(shots) / f"{html.stem}.png"
        path.write_bytes(png)
    return PageCheck(html.name, not problems, len(charts), problems, path, expected)


def _chart_problems(i: int, chart: Mapping[str, float], shot: Image.Image) -> list[str]:
    if chart["w"] < 1 or chart["h"] < 1:
        return [f"chart {i}: not displayed (box {chart['w']:.0f}x{chart['h']:.0f})"]
    problems = [] if chart["marks"] else [f"chart {i}: draws no data marks"]
    box = (
        max(0, round(chart["x"])),
        max(0, round(chart["y"])),
        min(shot.width, round(chart["x"] + chart["w"])),
        min(shot.height, round(chart["y"] + chart["h"])),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        return [*problems, f"chart {i}: outside the page"]
    ink = ink_fraction(shot.crop(box))
    if ink < CHART_MIN_INK:
        problems.append(f"chart {i}: blank in screenshot ({ink:.2%} non-background pixels)")
    return problems


def _expected_charts(values: list[str], problems: list[str]) -> int | None:
    if not values:
        return None
    try:
        return sum(int(v) for v in values)
    except ValueError:
        problems.append(f'bad <meta name="{META_CHARTS}"> content: {values}')
        return None


def _js_error(exc: Any) -> str:
    # Playwright's page errors carry the JS error's name (ReferenceError, ...) beside its message.
    name = getattr(exc, "name", "") or "Error"
    return f"{name}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
