"""`esa show SPEC`: the spec's hypotheses, runs (sweeps expanded), criteria and stages as plain text that fits
the terminal, so a researcher sees what a spec will do before compiling or running it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from esa.compile.compiler import PlanError, load_specs, relative_source
from esa.compile.emit import read_sources
from esa.compile.ownership import spec_stages
from esa.show.criteria import criterion_phrases
from esa.show.memory import memory_phrase
from esa.show.runs import run_phrases
from esa.spec import Spec, SpecErrors, load_spec

INDENT, DETAIL = "  ", "      "
MIN_WIDTH = 60  # below this the two indents leave too little room to read


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


NBSP = "\u00a0"  # textwrap never breaks at a no-break space


def _joined(parts: list[str], width: int, first: str, rest: str, sep: str) -> list[str]:
    """Parts joined by ``sep`` and wrapped between parts; a part longer than a line may still break inside."""
    room = width - len(rest)
    glued = [part.replace(" ", NBSP) if len(part) <= room else part for part in parts]
    joiner = NBSP + sep.lstrip() if sep.strip() else sep  # a line ends with the separator, never starts with it
    return [line.replace(NBSP, " ") for line in _wrap(joiner.join(glued), width, first, rest)]


def _command(cmd: str, width: int) -> list[str]:
    """A stage command wrapped between options, never between an option and its value."""
    chunks: list[str] = []
    for token in cmd.split(" "):
        if chunks and chunks[-1].startswith("--") and " " not in chunks[-1] and not token.startswith("--"):
            chunks[-1] += " " + token
        else:
            chunks.append(token)
    return _joined(chunks, width, DETAIL, DETAIL + "  ", " ")


def _item(name: str, heading: list[str], phrases: list[str], width: int) -> list[str]:
    """'  name  heading' then the phrases, each joined by ' · ' and wrapped under a deeper indent."""
    parts = [f"{name}  {heading[0]}", *heading[1:]] if heading else [name]
    lines = _joined(parts, width, INDENT, DETAIL, " · ")
    if phrases:
        lines += _joined(phrases, width, DETAIL, DETAIL, " · ")
    return lines


def _load(path: str, root: Path) -> tuple[str, dict[str, Spec], str | None]:
    """The spec's source, the specs compiled with it (those dvc.yaml records), and a note when those fail."""
    load_spec(path)  # the spec's own mistakes, located by the path as given
    source = relative_source(path, root)
    others = [s for s in read_sources(root / "dvc.yaml") if s != source and (root / s).exists()]
    try:
        return source, load_specs([source, *others], root), None
    except (SpecErrors, PlanError) as exc:
        if not others:
            raise
        specs = load_specs([source], root)
        return source, specs, f"not compared with the other specs in dvc.yaml: {str(exc).splitlines()[0]}"


def show_spec(path: str, root: Path, width: int = 100) -> str:
    width = max(width, MIN_WIDTH)
    source, specs, note = _load(path, root)
    spec = specs[source]
    stages = spec_stages(source, specs, root)
    shared = sum(1 for _, others in stages if others)
    lines = _wrap(f"{source}: {spec.title}", width, "", INDENT)
    lines += _joined([f"phase {spec.phase}", f"name {spec.name}", f"results in results/{spec.name}/",
                      f"{len(spec.runs)} runs", f"{len(spec.criteria)} criteria",
                      f"{len(stages)} stages ({shared} shared)"], width, INDENT, INDENT, " · ")
    if note:
        lines += _wrap(f"note: {note}", width, INDENT, INDENT)
    lines += ["", "Hypotheses"]
    for hypothesis in spec.hypotheses:
        lines += _wrap(f"{hypothesis.id}  {' '.join(hypothesis.statement.split())}", width, INDENT, DETAIL)
    lines += ["", f"Runs ({len(spec.runs)})"]
    for run in spec.runs:
        heading, phrases = run_phrases(run, spec)
        if run.kind == "score":
            phrases.append(memory_phrase(run, root))
        sweep = spec.sweep_of(run.id)
        lines += _item(run.id, heading + ([f"from sweep {sweep}"] if sweep else []), phrases, width)
    lines += ["", f"Criteria ({len(spec.criteria)})"]
    for criterion in spec.criteria:
        lines += _item(criterion.id, *criterion_phrases(criterion, spec), width)
    lines += ["", f"Stages ({len(stages)}, in dvc.yaml order; shared: emitted once for several specs)"]
    for node, others in stages:
        owners = [f"shared with {', '.join(others)}"] if others else []
        lines += _item(node.name, owners, [], width) + _command(node.cmd, width)
    if spec.warnings:
        lines += ["", "Warnings"] + [line for w in spec.warnings for line in _wrap(str(w), width, INDENT, DETAIL)]
    return "\n".join(line.rstrip() for line in lines)
