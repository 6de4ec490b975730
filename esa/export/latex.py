"""LaTeX exhibits: booktabs tables that pdflatex compiles with only booktabs (and amsmath) in the preamble.

Text is escaped for LaTeX's special characters; the Unicode the reports use (±, ×, Δ, ρ, −, ∞, superscripts…)
becomes math-mode commands, because pdflatex's default UTF-8 support does not cover them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from esa.export.exhibits import Exhibits, Figure, Table, cells

# Characters LaTeX treats specially in text; < > | " would print as other glyphs in the default OT1 encoding.
_TEXT = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
    "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}", '"': "{''}",
    "`": r"\textasciigrave{}", "—": "---", "–": "--", "…": r"\ldots{}", "‘": "`", "’": "'", "“": "``", "”": "''",
    "\u00a0": "~", "\u2009": r"\,", "\u202f": r"\,", "\t": " ", "\n": " ", "\r": " ",
}
_MATH = {
    "<": "<", ">": ">", "±": r"\pm", "×": r"\times", "÷": r"\div", "−": "-", "∞": r"\infty", "·": r"\cdot",
    "≥": r"\geq", "≤": r"\leq", "≠": r"\neq", "≈": r"\approx", "→": r"\rightarrow", "←": r"\leftarrow",
    "∩": r"\cap", "∪": r"\cup", "√": r"\surd", "°": r"^{\circ}", "•": r"\bullet", "✓": r"\surd", "✗": r"\times",
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "θ": r"\theta",
    "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau",
    "φ": r"\phi", "χ": r"\chi", "ω": r"\omega", "Δ": r"\Delta", "Σ": r"\Sigma", "Ω": r"\Omega",
}
_SUP = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-"))
_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋", "0123456789+-"))
# Accented letters: the base letter with LaTeX's accent command (pdflatex knows these in every encoding).
_ACCENTS = {"\u0301": "'", "\u0300": "`", "\u0302": "^", "\u0308": '"', "\u0303": "~", "\u0327": "c", "\u030c": "v"}
_CODE = re.compile(r"`([^`]+)`")


def _char(ch: str) -> tuple[str, str]:
    """(kind, LaTeX) of one character: kind 'math', 'sup', 'sub' or 'text'."""
    if ch in _TEXT:
        return "text", _TEXT[ch]
    if ch in _MATH:
        return "math", _MATH[ch]
    if ch in _SUP:
        return "sup", _SUP[ch]
    if ch in _SUB:
        return "sub", _SUB[ch]
    if ch.isascii():
        return "text", ch if ch.isprintable() else ""
    base, *marks = unicodedata.normalize("NFD", ch)
    if base.isascii() and base.isalpha() and len(marks) == 1 and marks[0] in _ACCENTS:
        return "text", f"\\{_ACCENTS[marks[0]]}{{{base}}}"
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return "text", escape(plain) if plain else "?"  # nothing printable in ASCII: mark it rather than fail


def _is_minus(text: str, i: int) -> bool:
    """A hyphen that is a number's sign (-0.5, 1e-05): typeset as a minus, not a short hyphen."""
    if text[i] != "-" or not text[i + 1:i + 2].isdigit():
        return False
    before = text[i - 1] if i else " "
    return before in " ([/" or (before == "e" and i >= 2 and text[i - 2].isdigit())


def _escape_plain(text: str) -> str:
    out: list[str] = []
    math: list[str] = []  # adjacent math pieces share one \ensuremath, so χ² is \chi^{2}
    run_kind, run = "", ""

    def flush_run() -> None:
        nonlocal run_kind, run
        if run:
            math.append(("^{" if run_kind == "sup" else "_{") + run + "}")
        run_kind, run = "", ""

    def flush_math() -> None:
        flush_run()
        if math:
            out.append(r"\ensuremath{" + "".join(math).rstrip() + "}")
            math.clear()

    for i, ch in enumerate(text):
        kind, tex = ("math", "-") if _is_minus(text, i) else _char(ch)
        if kind in ("sup", "sub"):
            if run_kind != kind:
                flush_run()
            run_kind, run = kind, run + tex
            continue
        if kind == "math":
            flush_run()
            # A command followed by a letter would merge with it (\times x): separate them.
            math.append(tex + (" " if tex[-1].isalpha() else ""))
            continue
        flush_math()
        if ch == "-" and text[i + 1:i + 2] == "-":
            tex = "-{}"  # keep "--" two hyphens, not an en dash
        out.append(tex)
    flush_math()
    return "".join(out)


def escape(text: str) -> str:
    """Text as LaTeX source; `code` spans become \\texttt."""
    parts = _CODE.split(str(text))
    return "".join(r"\texttt{" + _escape_plain(p) + "}" if i % 2 else _escape_plain(p) for i, p in enumerate(parts))


WRAP_AFTER = 40  # characters: longer text cells wrap instead of running past the margin
WRAP_WIDTH = "0.28"


def label(phase: str, name: str, kind: str = "tab") -> str:
    return f"{kind}:{phase}-{name}"


def tabular(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """A booktabs tabular: numbers right-aligned, text left-aligned; long text wraps in a paragraph column."""
    def column(i: int, is_number: bool) -> str:
        if is_number:
            return "r"
        longest = max((len(str(r[i])) for r in rows), default=0)
        return rf"p{{{WRAP_WIDTH}\linewidth}}" if longest > WRAP_AFTER else "l"

    spec = "".join(column(i, n) for i, n in enumerate(numeric))

    def line(values: Sequence[str]) -> str:
        return "    " + " & ".join(escape(v) for v in values) + r" \\"

    body = [line(r) for r in rows]
    return "\n".join([rf"  \begin{{tabular}}{{{spec}}}", r"    \toprule", line(headers), r"    \midrule",
                      *body, r"    \bottomrule", r"  \end{tabular}"])


def table(phase: str, t: Table) -> str:
    """One .tex file: a table float with caption and label around the booktabs tabular."""
    headers, rows, numeric = cells(t.frame)
    # Wide tables get a smaller font and tighter columns so they fit a page more often.
    size = r"\footnotesize\setlength{\tabcolsep}{3pt}" if len(headers) > 7 else r"\small"
    # Shrink to the text width only when wider (graphicx's \width is the natural width inside \resizebox).
    fit = r"  \resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"
    return "\n".join([
        f"% {phase}: {t.name}. Written by `esa export`; needs \\usepackage{{booktabs,graphicx}}.",
        r"\begin{table}[htbp]", r"  \centering", f"  {size}", f"  \\caption{{{escape(t.caption)}}}",
        f"  \\label{{{label(phase, t.name)}}}", fit, tabular(headers, rows, numeric) + "}",
        r"\end{table}", ""])


def figure_snippet(phase: str, f: Figure) -> str:
    return (f"\\begin{{figure}}[htbp]\\centering\n"
            f"  \\includegraphics[width=\\linewidth,height=0.8\\textheight,keepaspectratio]"
            f"{{\\esaexhibitsdir/figures/{f.name}.png}}\n"
            f"  \\caption{{{escape(f.caption)}}}\\label{{{label(phase, f.name, 'fig')}}}\n\\end{{figure}}")


def index(exhibits: Exhibits) -> str:
    """exhibits.tex: \\input's every table, then one figure float per chart (its 300-ppi PNG)."""
    lines = [
        f"% Exhibits of {exhibits.phase}, written by `esa export {exhibits.phase} --format latex`.",
        r"% Preamble: \usepackage{booktabs,graphicx} (amsmath optional). From another directory, define",
        r"% \newcommand{\esaexhibitsdir}{path/to/this/folder} before \input{path/to/this/folder/exhibits}.",
        r"\providecommand{\esaexhibitsdir}{.}",
        *(f"\\input{{\\esaexhibitsdir/{t.name}}}" for t in exhibits.tables),
    ]
    if exhibits.figures:
        lines += ["", "% Figures: figures/<name>.svg and .png (300 ppi)."]
        lines += [figure_snippet(exhibits.phase, f) for f in exhibits.figures]
    return "\n".join(lines) + "\n"
