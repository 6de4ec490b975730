"""Render the whole lab notebook (reports/_quarto.yml) to reports/_site/, one self-contained page each.

With `quarto` on PATH the project is rendered by Quarto; otherwise every page listed in `_quarto.yml` goes
through the offline fallback of render.py, with the same navigation bar the Quarto website would have.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from esa.report.render import ReportError, external_refs, page_env, render_qmd, strip_namespaces

CONFIG = "_quarto.yml"


@dataclass(frozen=True)
class SiteConfig:
    title: str
    pages: list[str]  # .qmd file names, in render order
    nav: list[tuple[str, str]]  # (page .qmd, link text)
    output_dir: str


def read_config(reports_dir: Path) -> SiteConfig:
    path = reports_dir / CONFIG
    if not path.is_file():
        raise ReportError(f"{path}: no Quarto project file")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    project, website = data.get("project") or {}, data.get("website") or {}
    pages = list(project.get("render") or sorted(p.name for p in reports_dir.glob("*.qmd")))
    missing = [page for page in pages if not (reports_dir / page).is_file()]
    if missing:
        raise ReportError(f"{path}: project.render: no such page {missing[0]}")
    nav = [(item["href"], str(item.get("text") or item["href"])) for item in
           ((website.get("navbar") or {}).get("left") or []) if isinstance(item, dict) and "href" in item]
    return SiteConfig(title=str(website.get("title") or "Reports"), pages=pages, nav=nav or [(p, p) for p in pages],
                      output_dir=str(project.get("output-dir") or "_site"))


def html_name(qmd: str) -> str:
    return f"{Path(qmd).stem}.html"


def nav_bar(config: SiteConfig, current: str) -> str:
    links = []
    for href, text in config.nav:
        active = ' class="active" aria-current="page"' if href == current else ""
        links.append(f'<a href="{html.escape(html_name(href))}"{active}>{html.escape(text)}</a>')
    return (f'<nav class="site-nav"><a class="site-title" href="{html_name(config.nav[0][0])}">'
            f"{html.escape(config.title)}</a>{''.join(links)}</nav>\n")


def render_site(reports_dir: Path, project_root: Path, *, use_quarto: bool = True) -> list[Path]:
    """Render every page of the site; return the HTML files, checked to need no network."""
    reports_dir, project_root = reports_dir.resolve(), project_root.resolve()
    config = read_config(reports_dir)
    out_dir = reports_dir / config.output_dir
    quarto = shutil.which("quarto") if use_quarto else None
    if quarto:
        return _render_quarto_site(quarto, reports_dir, project_root, out_dir, config)
    return [render_qmd(reports_dir / page, out_dir / html_name(page), project_root=project_root, use_quarto=False,
                       before_body=nav_bar(config, page)) for page in config.pages]


def _render_quarto_site(quarto: str, reports_dir: Path, project_root: Path, out_dir: Path,
                        config: SiteConfig) -> list[Path]:
    env = page_env(project_root, out_dir)
    cmd = [quarto, "render", str(reports_dir), "--execute-dir", str(project_root)]
    proc = subprocess.run(cmd, cwd=reports_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReportError(f"quarto render {reports_dir} failed:\n{proc.stderr[-4000:]}")
    pages = []
    for page in config.pages:
        path = out_dir / html_name(page)
        text = strip_namespaces(path.read_text(encoding="utf-8"))
        refs = external_refs(text)
        if refs:
            raise ReportError(f"{path.name}: output would not work offline; external references: {refs[:5]}")
        path.write_text(text, encoding="utf-8")
        pages.append(path)
    return pages
