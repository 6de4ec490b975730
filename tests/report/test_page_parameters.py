"""Page parameters in the offline renderer: overrides are injected after the `parameters` cell, as papermill does."""

from __future__ import annotations

from pathlib import Path

import pytest

from esa.report.parameters import quarto_args
from esa.report.render import ReportError, render_qmd

PAGE = """---
title: Params
execute:
  echo: true
---

```{python}
#| tags: [parameters]
SPEC = "phase1"
```

```{python}
#| echo: false
print(f"showing results/{SPEC}")
```
"""


def render(tmp_path: Path, text: str, params: dict | None = None) -> str:
    qmd = tmp_path / "page.qmd"
    qmd.write_text(text)
    out = render_qmd(qmd, tmp_path / "_site" / "page.html", project_root=tmp_path, use_quarto=False, params=params)
    return out.read_text(encoding="utf-8")


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert "showing results/phase1" in render(tmp_path, PAGE)
    html = render(tmp_path, PAGE, {"SPEC": "real-phase1"})
    assert "showing results/real-phase1" in html and "showing results/phase1" not in html
    assert "Injected parameters" not in html  # the injected cell is hidden even where code is echoed
    assert "&quot;phase1&quot;" in html  # the page's own parameters cell still shows, with its default


def test_a_failing_cell_keeps_its_chunk_line_and_number(tmp_path: Path) -> None:
    text = PAGE + '\n```{python}\nundefined_name\n```\n'
    with pytest.raises(ReportError, match=r"page\.qmd:17: code cell 3 of 3 failed: NameError"):
        render(tmp_path, text, {"SPEC": "zoo"})


def test_without_a_parameters_cell_they_are_set_at_the_top(tmp_path: Path) -> None:
    text = PAGE.replace("#| tags: [parameters]\n", "")
    with pytest.warns(UserWarning, match="no cell tagged 'parameters'"):
        html = render(tmp_path, text, {"SPEC": "zoo"})
    assert "showing results/phase1" in html  # the page's assignment comes after, as with papermill


def test_quarto_gets_the_same_parameters() -> None:
    assert quarto_args({"SPEC": "zoo"}) == ["-P", "SPEC:zoo"]
    assert quarto_args(None) == []
