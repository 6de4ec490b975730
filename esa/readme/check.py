"""`esa readme`: write the generated tables of a Markdown file and check every number its cited prose quotes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from esa.readme.blocks import Block, BlockError, find_blocks, replace_bodies
from esa.readme.numbers import cited_values, found, quoted_numbers
from esa.readme.tables import TableSourceError, render_table


@dataclass
class Outcome:
    text: str  # the file's text with every table regenerated
    stale: list[str] = field(default_factory=list)  # tables whose committed text differs from the results
    unsupported: list[str] = field(default_factory=list)  # quoted numbers found in no cited file
    errors: list[str] = field(default_factory=list)  # markers or sources that cannot be read

    @property
    def problems(self) -> list[str]:
        return self.errors + self.stale + self.unsupported


def _table_body(block: Block, root: Path) -> str:
    if len(block.args) != 2:
        raise TableSourceError("a table marker is `esa:table KIND SOURCE`")
    kind, source = block.args
    table = "\n".join(block.indent + line for line in render_table(kind, source, root).split("\n"))
    return "\n" + table + "\n"


def _check_prose(block: Block, root: Path, name: str) -> tuple[list[str], list[str]]:
    values, errors = [], []
    for source in block.args:
        path = root / source
        if not path.is_file():
            errors.append(f"{name}:{block.line}: cited file {source} does not exist")
        else:
            values.extend(cited_values(path))
    if errors:
        return errors, []
    values = sorted(set(values))
    cited = ", ".join(block.args)
    return [], [f"{name}:{block.start + 1 + offset}: {number.text} is not in {cited}"
                for offset, number in quoted_numbers(block.body) if not found(number, values)]


def check_file(path: Path, root: Path | None = None) -> Outcome:
    """Regenerate every table of ``path`` from the results under ``root`` (default: the file's folder) and check
    every number of every cited region."""
    root = Path(root) if root is not None else path.parent
    name = path.name
    text = path.read_text(encoding="utf-8")
    try:
        blocks = find_blocks(text, name)
    except BlockError as exc:
        return Outcome(text, errors=[str(exc)])
    outcome, bodies = Outcome(text), {}
    for block in blocks:
        if block.kind == "table":
            try:
                bodies[block.line] = _table_body(block, root)
            except TableSourceError as exc:
                outcome.errors.append(f"{name}:{block.line}: {exc}")
                continue
            if bodies[block.line] != block.body:
                outcome.stale.append(f"{name}:{block.line}: table {' '.join(block.args)} differs from the results")
        else:
            errors, unsupported = _check_prose(block, root, name)
            outcome.errors.extend(errors)
            outcome.unsupported.extend(unsupported)
    outcome.text = replace_bodies(text, bodies)
    return outcome
