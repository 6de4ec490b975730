"""Render a Quarto `.qmd` page to one self-contained HTML file that works offline.

With `quarto` on PATH, Quarto renders it. Without it, the same page is executed with
jupytext + nbclient and converted by the pandoc that ships with pypandoc-binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pypandoc
import yaml
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from esa.report.charts import status_colors
from esa.report.parameters import injection_index, is_injected, parameters_cell, quarto_args
from esa.report.svg import clean_svg, strip_namespaces  # noqa: F401  (part of this module's API)

# Read by report pages: where the project is, and how links from the HTML reach it.
ENV_PROJECT_ROOT = "ESA_PROJECT_ROOT"
ENV_LINK_ROOT = "ESA_LINK_ROOT"

# Highest priority first, as Jupyter front ends choose.
_MIME_ORDER = ("image/svg+xml", "text/html", "text/markdown", "image/png", "image/jpeg", "text/plain")
_QUARTO_DEFAULTS: dict[str, Any] = {"echo": True, "output": True, "include": True, "eval": True, "warning": True}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)
_CHUNK = re.compile(r"^[ \t]*`{3,}[ \t]*\{python[^}]*\}", re.M)
_EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|data)\s*=\s*["']?\s*(?:https?:)?//[^\s"'>]*)"""
    r"""|@import\b[^;]*|url\(\s*["']?\s*(?:https?:)?//[^)]*\)""",
    re.I,
)


class ReportError(RuntimeError):
    """A report page failed to execute or render."""


def default_output(qmd: Path) -> Path:
    return qmd.parent / "_site" / f"{qmd.stem}.html"


def render_qmd(
    qmd: Path,
    out_html: Path | None = None,
    *,
    project_root: Path,
    use_quarto: bool = True,
    timeout: int = 3600,
    before_body: str = "",
    params: Mapping[str, Any] | None = None,
) -> Path:
    """Render `qmd` (cells run with cwd = project_root) to one self-contained HTML file; return its path.

    use_quarto: use Quarto when it is on PATH; False forces the offline fallback.
    timeout: seconds allowed per cell in the fallback.
    before_body: HTML put at the top of the page body by the fallback (the site's navigation bar).
    params: values overriding the page's `parameters` cell (`quarto render -P name:value`).
    """
    qmd, project_root = Path(qmd).resolve(), Path(project_root).resolve()
    out_html = Path(out_html or default_output(qmd)).resolve()
    out_html.parent.mkdir(parents=True, exist_ok=True)
    env = page_env(project_root, out_html.parent)
    quarto = shutil.which("quarto") if use_quarto else None
    if quarto:
        html = _render_quarto(quarto, qmd, project_root, env, params)
    else:
        html = _render_fallback(qmd, project_root, env, timeout, before_body, params)
    html = strip_namespaces(html)
    refs = external_refs(html)
    if refs and quarto:
        warnings.warn(f"{out_html.name} references external resources: {refs[:5]}", stacklevel=2)
    elif refs:
        raise ReportError(f"{qmd.name}: output would not work offline; external references: {refs[:5]}")
    out_html.write_text(html, encoding="utf-8")
    return out_html


def page_env(project_root: Path, out_dir: Path) -> dict[str, str]:
    """The environment report cells run in: where the project is, and how links from `out_dir` reach it."""
    return {**os.environ, ENV_PROJECT_ROOT: str(project_root),
            ENV_LINK_ROOT: Path(os.path.relpath(project_root, out_dir)).as_posix()}


def external_refs(html: str) -> list[str]:
    """Attributes, CSS urls and imports that would fetch from the network."""
    return [m.group(0)[:120] for m in _EXTERNAL.finditer(html)]


# --- Quarto ----------------------------------------------------------------------------------


def _render_quarto(quarto: str, qmd: Path, project_root: Path, env: Mapping[str, str],
                   params: Mapping[str, Any] | None = None) -> str:
    cmd = [quarto, "render", str(qmd), "--to", "html", "--execute-dir", str(project_root), *quarto_args(params)]
    proc = subprocess.run(cmd, cwd=qmd.parent, env=dict(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReportError(f"quarto render {qmd.name} failed:\n{proc.stderr[-4000:]}")
    produced = qmd.with_suffix(".html")
    html = produced.read_text(encoding="utf-8")
    produced.unlink()
    return html


# --- Offline fallback: jupytext + nbclient + pandoc ------------------------------------------


def front_matter(text: str) -> dict[str, Any]:
    match = _FRONT_MATTER.match(text)
    return (yaml.safe_load(match.group(1)) or {}) if match else {}


def _render_fallback(qmd: Path, project_root: Path, env: Mapping[str, str], timeout: int,
                     before_body: str = "", params: Mapping[str, Any] | None = None) -> str:
    text = qmd.read_text(encoding="utf-8")
    meta = front_matter(text)
    nb = jupytext.reads(text, fmt="Rmd")
    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.lstrip().startswith("---"):
        nb.cells.pop(0)  # the front matter, handled above

    doc_opts = {**_QUARTO_DEFAULTS, **_quarto_execute_options(meta)}
    options = [_cell_options(c.source, doc_opts) if c.cell_type == "code" else {} for c in nb.cells]
    if params:
        at = injection_index(nb.cells, options)
        try:
            nb.cells.insert(at, parameters_cell(params))
        except ValueError as exc:
            raise ReportError(f"{qmd.name}: {exc}") from None
        options.insert(at, _cell_options(nb.cells[at].source, doc_opts))
    for cell, opts in zip(nb.cells, options):
        if cell.cell_type != "code":
            continue
        opts["code"] = _strip_option_lines(cell.source)
        if not opts["eval"]:
            cell.source = ""  # nbclient skips empty cells
        if opts.get("error"):
            cell.metadata.setdefault("tags", []).append("raises-exception")

    kernel = meta.get("jupyter") if isinstance(meta.get("jupyter"), str) else "python3"
    _execute(nb, qmd, text, project_root, env, timeout, kernel)

    body = "\n\n".join(_cell_markdown(c, o) for c, o in zip(nb.cells, options))
    return _pandoc(body, meta, qmd, project_root, before_body)


def _quarto_execute_options(meta: Mapping[str, Any]) -> dict[str, Any]:
    execute = meta.get("execute")
    return dict(execute) if isinstance(execute, Mapping) else {}


def _cell_options(source: str, doc_opts: Mapping[str, Any]) -> dict[str, Any]:
    """Quarto `#| key: value` lines at the top of a cell, over the document's `execute:` defaults."""
    lines = []
    for line in source.splitlines():
        if not line.startswith("#|"):
            break
        lines.append(line[2:].strip())
    cell = yaml.safe_load("\n".join(lines)) if lines else None
    return {**doc_opts, **(cell if isinstance(cell, dict) else {})}


def _strip_option_lines(source: str) -> str:
    lines = source.splitlines()
    while lines and lines[0].startswith("#|"):
        lines.pop(0)
    return "\n".join(lines)


def _execute(
    nb: nbformat.NotebookNode,
    qmd: Path,
    text: str,
    project_root: Path,
    env: Mapping[str, str],
    timeout: int,
    kernel: str,
) -> None:
    # The page's own cells, numbered as its chunks are (an injected parameters cell has no chunk).
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not is_injected(c)]
    chunk_lines = [text.count("\n", 0, m.start()) + 1 for m in _CHUNK.finditer(text)]
    n_run = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    current: dict[str, int] = {"index": -1}

    def on_start(cell: Any, cell_index: int) -> None:
        current["index"] = cell_index

    console = Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress, tempfile.TemporaryDirectory() as sockets:
        task = progress.add_task(f"executing {qmd.name}", total=n_run)
        # Local sockets, not TCP ports: nothing listens on the network while a page runs.
        km = KernelManager(kernel_name=kernel, transport="ipc", ip=f"{sockets}/kernel")
        client = NotebookClient(
            nb,
            km=km,
            kernel_name=kernel,
            timeout=timeout,
            resources={"metadata": {"path": str(project_root)}},
            on_cell_start=on_start,
            on_cell_complete=lambda cell, cell_index: progress.advance(task),
        )
        try:
            client.execute(env=dict(env))
        except CellExecutionError as err:
            k = code_cells.index(current["index"]) if current["index"] in code_cells else -1
            where = f"{qmd}:{chunk_lines[k]}" if len(chunk_lines) == len(code_cells) and k >= 0 else str(qmd)
            raise ReportError(
                f"{where}: code cell {k + 1} of {len(code_cells)} failed: {err.ename}: {err.evalue}\n"
                + _ANSI.sub("", err.traceback)[-3000:]
            ) from None
        finally:
            if km.has_kernel:  # a kernel manager passed in is ours to stop, not nbclient's
                km.shutdown_kernel(now=False)


def _fence(content: str, info: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", content)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{info}\n{content.rstrip()}\n{bar}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output_markdown(output: Mapping[str, Any], opts: Mapping[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        if output.get("name") == "stderr" and not opts["warning"]:
            return ""
        text = _text(output.get("text", ""))
        return text if opts["output"] == "asis" else _fence(text)
    if kind == "error":
        return _fence(_ANSI.sub("", "\n".join(output.get("traceback", []))))
    data = output.get("data", {})
    mime = next((m for m in _MIME_ORDER if m in data), None)
    if mime is None:
        return ""
    value = _text(data[mime])
    if mime == "image/svg+xml":
        return _fence(clean_svg(value), "{=html}")
    if mime == "text/html":
        return _fence(value, "{=html}")
    if mime == "text/markdown":
        return value
    if mime in ("image/png", "image/jpeg"):
        b64 = value.replace("\n", "")
        return _fence(f'<img src="data:{mime};base64,{b64}" alt="">', "{=html}")
    return value if opts["output"] == "asis" else _fence(value)


def _cell_markdown(cell: Mapping[str, Any], opts: Mapping[str, Any]) -> str:
    if cell["cell_type"] != "code":
        return cell["source"]
    if not opts["include"]:
        return ""
    parts = [_fence(opts["code"], "python")] if opts["echo"] and opts["code"].strip() else []
    if opts["output"]:
        parts += [_output_markdown(o, opts) for o in cell.get("outputs", [])]
    return "\n\n".join(p for p in parts if p)


def _pandoc(body: str, meta: Mapping[str, Any], qmd: Path, project_root: Path, before_body: str = "") -> str:
    args = ["--standalone", "--embed-resources", "--wrap=none", "--metadata=document-css:false"]
    args.append(f"--resource-path={os.pathsep.join([str(qmd.parent), str(project_root)])}")
    args += ["--metadata", f"title={meta.get('title') or qmd.stem}"]
    args += ["--metadata", f"lang={meta.get('lang') or 'en'}"]
    for key in ("subtitle", "author", "date"):
        if isinstance(meta.get(key), str):
            args += ["--metadata", f"{key}={meta[key]}"]
    html_format = (meta.get("format") or {}).get("html") if isinstance(meta.get("format"), Mapping) else None
    if isinstance(html_format, Mapping) and html_format.get("toc"):
        args.append("--toc")
    with tempfile.TemporaryDirectory() as tmp:
        header = Path(tmp) / "style.html"
        header.write_text(f"<style>\n{report_css()}\n</style>\n", encoding="utf-8")
        args.append(f"--include-in-header={header}")
        if before_body:
            nav = Path(tmp) / "before.html"
            nav.write_text(before_body, encoding="utf-8")
            args.append(f"--include-before-body={nav}")
        # No --mathjax/--katex: pandoc's default math output needs no script from a CDN.
        return pypandoc.convert_text(body, "html", format="markdown", extra_args=args)


def report_css() -> str:
    c = status_colors()
    return f"""
:root {{ --fg: #1b1b1b; --muted: #5c5c5c; --rule: #d9d9d9; --bg-alt: #f5f6f7; --link: #0b5cad; }}
html {{ font-size: 16px; }}
body {{ margin: 0 auto; max-width: 70rem; padding: 2rem 1.25rem 4rem; color: var(--fg); background: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  line-height: 1.55; }}
h1, h2, h3 {{ line-height: 1.25; margin-top: 2rem; }}
h1.title {{ margin-top: 0; }}
header#title-block-header {{ border-bottom: 1px solid var(--rule); margin-bottom: 1.5rem; }}
a {{ color: var(--link); }}
code, pre {{ font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }}
pre {{ background: var(--bg-alt); padding: 0.75rem 1rem; overflow-x: auto; border-radius: 4px; }}
blockquote {{ margin: 1rem 0; padding: 0.5rem 1rem; border-left: 4px solid var(--rule); color: var(--muted); }}
nav#TOC {{ border: 1px solid var(--rule); border-radius: 4px; padding: 0.5rem 1rem; margin-bottom: 2rem; }}
nav#TOC ul {{ padding-left: 1.2rem; margin: 0.25rem 0; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; width: auto; max-width: 100%;
  display: block; overflow-x: auto; }}
th, td {{ border-bottom: 1px solid var(--rule); padding: 0.35rem 0.6rem; text-align: left; vertical-align: top; }}
thead th {{ border-bottom: 2px solid var(--fg); white-space: nowrap; }}
tbody tr:nth-child(even) {{ background: var(--bg-alt); }}
td {{ font-variant-numeric: tabular-nums; }}
small.reason {{ color: var(--muted); }}
table.grade-table {{ display: table; width: 100%; }}
table.grade-table td:nth-child(3) {{ min-width: 16rem; }}
table.grade-table td:nth-child(4), table.grade-table td:nth-child(6), table.grade-table td:nth-child(7),
table.grade-table td:nth-child(8) {{ white-space: nowrap; }}
svg, img {{ max-width: 100%; height: auto; }}
.badge {{ display: inline-block; padding: 0.05rem 0.5rem; border-radius: 999px; font-size: 0.8rem;
  font-weight: 600; white-space: nowrap; color: #111; }}
.badge-pass {{ background: {c["pass"]}; }}
.badge-fail {{ background: {c["fail"]}; }}
.badge-inconclusive {{ background: {c["inconclusive"]}; }}
.status-line {{ font-size: 1.05rem; }}
.notice {{ border-left: 4px solid {c["fail"]}; background: var(--bg-alt); padding: 0.75rem 1rem; }}
nav.site-nav {{ display: flex; flex-wrap: wrap; gap: 0.25rem 1.25rem; align-items: baseline;
  border-bottom: 1px solid var(--rule); padding-bottom: 0.6rem; margin-bottom: 1.5rem; }}
nav.site-nav .site-title {{ font-weight: 700; color: var(--fg); text-decoration: none; margin-right: 0.75rem; }}
nav.site-nav a {{ text-decoration: none; }}
nav.site-nav a.active {{ font-weight: 600; border-bottom: 2px solid var(--link); }}
pre.diff .add {{ color: #00543a; background: #e3f4ec; display: inline-block; width: 100%; }}
pre.diff .del {{ color: #8a2b00; background: #fbe9e1; display: inline-block; width: 100%; }}
small.amended {{ color: {c["fail"]}; font-weight: 600; }}
article.log-entry {{ border: 1px solid var(--rule); border-radius: 4px; padding: 0 1rem 0.5rem; margin: 1rem 0; }}
article.log-entry h3 {{ margin-top: 0.75rem; font-size: 1.05rem; }}
""".strip()
