"""Which stages one spec makes `esa compile` emit, and which of them other specs emit too (one shared stage)."""

from __future__ import annotations

from pathlib import Path

from esa.compile.compiler import build_plan
from esa.compile.plan import StageNode
from esa.spec import Spec


def spec_stages(source: str, specs: dict[str, Spec], root: Path) -> list[tuple[StageNode, list[str]]]:
    """(stage, names of the other specs that emit it) for each stage of the spec at ``source``, in dvc.yaml order."""
    order = [node.name for node in build_plan(specs, root).ordered(root)]
    # Each spec's own plan: Plan.add keeps a node several specs add once, so the full plan cannot tell owners.
    emitted = {other: set(build_plan(specs, root, only=other).nodes) for other in specs if other != source}
    own = build_plan(specs, root, only=source).nodes
    return [(own[name], sorted(specs[other].name for other, names in emitted.items() if name in names))
            for name in order if name in own]
