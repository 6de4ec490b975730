"""Render the whole lab notebook (reports/_quarto.yml) to reports/_site/, one self-contained page each.

With `quarto` on PATH the project is rendered by Quarto; otherwise every page listed in `_quarto.yml` goes
through the offline fallback of render.py, with the same navigation bar the Quarto website would have. Each graded
spec not named phase<N> adds a variant page (variants.py): its phase's page rendered with SPEC set to its name.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from esa.report.parameters import quarto_args
from esa.report.render import ReportError, external_refs, page_env, render_qmd, strip_namespaces
from esa.report.variants import Variant, find_variants

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


def with_variants(config: SiteConfig, project_root: Path) -> tuple[SiteConfig, list[Variant]]:
    """The site's config with a navigation entry per variant page (after the configured ones), and the variants."""
    variants = find_variants(project_root, config.pages)
    return replace(config, nav=[*config.nav, *((v.qmd, v.name) for v in variants)]), variants


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
    config, variants = with_variants(read_config(reports_dir), project_root)
    out_dir = reports_dir / config.output_dir
    quarto = shutil.which("quarto") if use_quarto else None
    if quarto:
        pages = _render_quarto_site(quarto, reports_dir, project_root, out_dir, config)
        return pages + [_render_quarto_variant(quarto, reports_dir, project_root, out_dir, v) for v in variants]
    pages = [render_qmd(reports_dir / page, out_dir / html_name(page), project_root=project_root, use_quarto=False,
                        before_body=nav_bar(config, page)) for page in config.pages]
    return pages + [render_qmd(reports_dir / v.page, out_dir / html_name(v.qmd), project_root=project_root,
                               use_quarto=False, before_body=nav_bar(config, v.qmd), params=v.params)
                    for v in variants]


def _render_quarto_site(quarto: str, reports_dir: Path, project_root: Path, out_dir: Path,
                        config: SiteConfig) -> list[Path]:
    env = page_env(project_root, out_dir)
    cmd = [quarto, "render", str(reports_dir), "--execute-dir", str(project_root)]
    proc = subprocess.run(cmd, cwd=reports_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReportError(f"quarto render {reports_dir} failed:\n{proc.stderr[-4000:]}")
    return [_checked(out_dir / html_name(page)) for page in config.pages]


def _render_quarto_variant(quarto: str, reports_dir: Path, project_root: Path, out_dir: Path,
                           variant: Variant) -> Path:
    """`quarto render phaseN.qmd -P SPEC:<name> --output <name>.html`. Kept minimal (no Quarto where the tests run):
    Quarto's navbar comes from _quarto.yml, so it does not list variant pages as the offline site does."""
    name = html_name(variant.qmd)
    cmd = [quarto, "render", variant.page, *quarto_args(variant.params), "--output", name,
           "--execute-dir", str(project_root)]
    proc = subprocess.run(cmd, cwd=reports_dir, env=page_env(project_root, out_dir), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReportError(f"quarto render {variant.page} -P SPEC:{variant.name} failed:\n{proc.stderr[-4000:]}")
    path = out_dir / name
    if not path.exists() and (reports_dir / name).exists():  # --output outside a project render lands beside it
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(reports_dir / name, path)
    return _checked(path)


def _checked(path: Path) -> Path:
    """A page Quarto wrote, with XML namespaces stripped, refused when it would need the network."""
    text = strip_namespaces(path.read_text(encoding="utf-8"))
    refs = external_refs(text)
    if refs:
        raise ReportError(f"{path.name}: output would not work offline; external references: {refs[:5]}")
    path.write_text(text, encoding="utf-8")
    return path
