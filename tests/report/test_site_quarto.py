"""The Quarto branch of `render_site`, driven by a stand-in `quarto` that records its call and writes pages."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from esa.report.render import ReportError
from esa.report.site import render_site

FAKE = """#!{python}
import json, os, sys
from pathlib import Path
import yaml
project = Path(sys.argv[2])
Path(os.environ["FAKE_QUARTO_LOG"]).write_text(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(),
    "root": os.environ.get("ESA_PROJECT_ROOT"), "link": os.environ.get("ESA_LINK_ROOT")}}))
config = yaml.safe_load((project / "_quarto.yml").read_text())
out = project / config["project"]["output-dir"]
out.mkdir(exist_ok=True)
for page in config["project"]["render"]:
    extra = os.environ.get("FAKE_QUARTO_EXTRA", "")
    (out / (Path(page).stem + ".html")).write_text(
        '<html xmlns="http://www.w3.org/1999/xhtml"><body><svg xmlns="http://www.w3.org/2000/svg" class="marks">'
        "</svg>" + extra + "</body></html>")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    quarto = bin_dir / "quarto"
    quarto.write_text(FAKE.format(python=sys.executable))
    quarto.chmod(quarto.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_QUARTO_LOG", str(tmp_path / "call.json"))
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "_quarto.yml").write_text(
        "project:\n  type: website\n  output-dir: _site\n  render: [index.qmd, phase1.qmd]\n")
    for page in ("index.qmd", "phase1.qmd"):
        (reports / page).write_text("---\ntitle: t\n---\n")
    return tmp_path


def test_quarto_renders_the_project_and_namespaces_are_stripped(project: Path) -> None:
    pages = render_site(project / "reports", project)
    assert [p.name for p in pages] == ["index.html", "phase1.html"]
    call = json.loads((project / "call.json").read_text())
    assert call["argv"][:2] == ["render", str((project / "reports").resolve())]
    assert call["argv"][2:] == ["--execute-dir", str(project.resolve())]
    assert call["root"] == str(project.resolve()) and call["link"] == "../.."
    html = pages[0].read_text()
    assert "xmlns" not in html and '<svg class="marks">' in html


def test_quarto_output_that_needs_the_network_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_QUARTO_EXTRA", '<script src="https://cdn.example.org/vega.js"></script>')
    with pytest.raises(ReportError, match="would not work offline"):
        render_site(project / "reports", project)


def test_use_quarto_false_never_calls_it(project: Path) -> None:
    (project / "reports" / "_quarto.yml").write_text(
        "project:\n  type: website\n  output-dir: _site\n  render: [index.qmd]\n")
    (project / "reports" / "index.qmd").write_text("---\ntitle: Plain\n---\n\nJust text.\n")
    pages = render_site(project / "reports", project, use_quarto=False)
    assert not (project / "call.json").exists()
    assert "Just text." in pages[0].read_text() and '<nav class="site-nav">' in pages[0].read_text()
