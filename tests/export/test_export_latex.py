"""LaTeX exhibits: escaping, booktabs structure, and (when a TeX engine is installed) a real compile."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from esa.export import latex
from esa.export.exhibits import Table

ENGINES = ("pdflatex", "lualatex", "xelatex", "tectonic")
DOCUMENT = r"\documentclass{article}\usepackage{booktabs,amsmath,graphicx}\begin{document}\input{exhibits}\end{document}"


@pytest.mark.parametrize("text, expected", [
    ("50% & $5 #1 a_b", r"50\% \& \$5 \#1 a\_b"),
    ("~x ^y \\ {z}", r"\textasciitilde{}x \textasciicircum{}y \textbackslash{} \{z\}"),
    ("PPL (mean ± std)", r"PPL (mean \ensuremath{\pm} std)"),
    ("16 × 64", r"16 \ensuremath{\times} 64"),
    ("ΔPPL −1.2e−05", r"\ensuremath{\Delta}PPL \ensuremath{-}1.2e\ensuremath{-}05"),
    ("ρ (every seed)", r"\ensuremath{\rho} (every seed)"),
    ("χ² per seed", r"\ensuremath{\chi ^{2}} per seed"),
    ("below 10⁻¹²", r"below 10\ensuremath{^{-12}}"),
    ("log₁₀ |score|", r"log\ensuremath{_{10}} \textbar{}score\textbar{}"),
    ("< 0.05", r"\ensuremath{<} 0.05"),
    ("σ = 0.1·|w|", r"\ensuremath{\sigma} = 0.1\ensuremath{\cdot}\textbar{}w\textbar{}"),
    ("0.5 → 0.2", r"0.5 \ensuremath{\rightarrow} 0.2"),
    ("— and 19.5–22 and a--b", r"--- and 19.5--22 and a-{}-b"),
    ("run `grad_x_weight`", r"run \texttt{grad\_x\_weight}"),
    ("café", r"caf\'{e}"),
    ("∞ ≥ 2", r"\ensuremath{\infty} \ensuremath{\geq} 2"),
    ("snow ☃", "snow ?"),
    ("-0.5 and 5.4e-11 and [-2, 3] but ref-s, top-40, file-5", r"\ensuremath{-}0.5 and 5.4e\ensuremath{-}11 and "
     r"[\ensuremath{-}2, 3] but ref-s, top-40, file-5"),
])
def test_escape(text: str, expected: str) -> None:
    assert latex.escape(text) == expected


def test_table_float_and_rows() -> None:
    frame = pd.DataFrame({"run & id": ["a_1", "b%2"], "ΔPPL": [1.5, None], "note": ["x ± y", None]})
    tex = latex.table("phase9", Table("demo", "Caption with 5% & more.", frame))
    assert r"\caption{Caption with 5\% \& more.}" in tex and r"\label{tab:phase9-demo}" in tex
    assert r"\begin{tabular}{lrl}" in tex
    assert r"    run \& id & \ensuremath{\Delta}PPL & note \\" in tex
    assert r"    a\_1 & 1.5 & x \ensuremath{\pm} y \\" in tex
    assert r"    b\%2 & --- & --- \\" in tex  # missing values: the report's dash
    check_structure(tex)


def _unescaped(text: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), text.replace(r"\\", "")))


def check_structure(tex: str) -> None:
    """Balanced braces and environments; every tabular row has as many cells as the column spec."""
    assert _unescaped(tex, "{") == _unescaped(tex, "}")
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+\*?)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env
    assert not stack
    tabulars = re.findall(r"\\begin\{tabular\}\{((?:[lrc]|p\{[^{}]*\})+)\}(.*?)\\end\{tabular\}", tex, flags=re.S)
    assert len(tabulars) == tex.count(r"\begin{tabular}")  # every tabular's column spec was understood
    for spec, body in tabulars:
        columns = re.findall(r"[lrc]|p\{[^{}]*\}", spec)
        assert r"\toprule" in body and r"\midrule" in body and r"\bottomrule" in body
        rows = [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]
        assert len(rows) >= 2  # header and at least one row
        for row in rows:
            assert len(re.split(r"(?<!\\)&", row)) == len(columns), row


@pytest.mark.parametrize("phase", ["phase1", "phase2", "phase3", "phase4", "phase5"])
def test_exported_files_are_well_formed(latex_exports: dict, phase: str) -> None:
    written = latex_exports[phase]
    index = written.index.read_text()
    assert written.tables
    for path in written.tables:
        check_structure(path.read_text())
        assert f"\\input{{\\esaexhibitsdir/{path.stem}}}" in index
    check_structure(index)
    for figure in written.figures:  # each chart is a float including its 300-ppi PNG
        assert f"\\includegraphics[width=\\linewidth,height=0.8\\textheight,keepaspectratio]" \
               f"{{\\esaexhibitsdir/figures/{figure.stem}.png}}" in index


def _engine() -> str | None:
    return next((e for e in ENGINES if shutil.which(e)), None)


@pytest.mark.skipif(_engine() is None, reason="no TeX engine on PATH; structural checks stand")
@pytest.mark.parametrize("phase", ["phase1", "phase2", "phase3", "phase4", "phase5"])
def test_compiles_with_booktabs_amsmath_graphicx_and_fits_the_page(latex_exports: dict, phase: str, tmp_path: Path) -> None:
    folder = tmp_path / "tex"
    shutil.copytree(latex_exports[phase].out, folder)
    (folder / "doc.tex").write_text(DOCUMENT + "\n")
    engine = _engine()
    cmd = [engine, "doc.tex"] if engine == "tectonic" else [engine, "-interaction=nonstopmode", "-halt-on-error",
                                                            "doc.tex"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (folder / "doc.pdf").stat().st_size > 0
    if engine != "tectonic":  # wide tables shrink to the text width: nothing runs past the margin
        assert "Overfull \\hbox" not in (folder / "doc.log").read_text(errors="replace")
