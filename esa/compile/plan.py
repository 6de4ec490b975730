"""The plan IR: a typed DAG of stage nodes, checked before anything is written."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PlanError(Exception):
    """A plan that cannot be emitted: conflicting nodes, a cycle, or a dependency nothing provides."""


@dataclass(frozen=True)
class StageNode:
    name: str
    cmd: str
    deps: tuple[str, ...] = ()
    params: tuple[str, ...] = ()  # dotted keys into params.yaml
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()  # small JSON files `dvc metrics` / `dvc exp show` read
    uncached: tuple[str, ...] = ()  # outs or metrics kept in git (`cache: false`), e.g. what the README cites

    def produces(self) -> tuple[str, ...]:
        return self.outs + self.metrics


@dataclass
class Plan:
    nodes: dict[str, StageNode] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    root: Path = Path(".")  # the project: stage programs' code deps are read from its files

    def add(self, node: StageNode, params: dict[str, Any] | None = None) -> StageNode:
        """Add a node once: an identical node added again (shared work) is kept once; a different one is an error."""
        existing = self.nodes.get(node.name)
        if existing is not None and existing != node:
            raise PlanError(f"stage '{node.name}' is defined twice with different contents")
        self.nodes[node.name] = node
        for key, value in (params or {}).items():
            self._set_param(key, value, node.name)
        return node

    def _set_param(self, dotted: str, value: Any, owner: str) -> None:
        *parents, leaf = dotted.split(".")
        tree = self.params
        for part in parents:
            tree = tree.setdefault(part, {})
        if leaf in tree and tree[leaf] != value:
            raise PlanError(f"stage '{owner}' sets params '{dotted}' differently from another stage")
        tree[leaf] = value

    def producers(self) -> dict[str, str]:
        """Output path → the stage that writes it."""
        owner: dict[str, str] = {}
        for node in self.nodes.values():
            for out in node.produces():
                if out in owner and owner[out] != node.name:
                    raise PlanError(f"'{out}' is written by both '{owner[out]}' and '{node.name}'")
                owner[out] = node.name
        return owner

    def ordered(self, root: Path) -> list[StageNode]:
        """Validate the DAG and return its nodes in a deterministic topological order."""
        owner = self.producers()
        sorter: graphlib.TopologicalSorter = graphlib.TopologicalSorter()
        for node in self.nodes.values():
            upstream = set()
            for dep in node.deps:
                producer = _producer_of(dep, owner)
                if producer is None:
                    if not (root / dep).exists():
                        raise PlanError(f"stage '{node.name}' depends on '{dep}', which no stage writes "
                                        f"and which does not exist")
                elif producer != node.name:
                    upstream.add(producer)
                else:
                    raise PlanError(f"stage '{node.name}' depends on its own output '{dep}'")
            sorter.add(node.name, *sorted(upstream))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            raise PlanError(f"stages form a cycle: {' -> '.join(exc.args[1])}") from None
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            order.extend(ready)
            sorter.done(*ready)
        return [self.nodes[name] for name in order]


def _producer_of(dep: str, owner: dict[str, str]) -> str | None:
    """The stage writing ``dep`` itself or a directory containing it."""
    path = Path(dep)
    for candidate in (path, *path.parents):
        name = owner.get(candidate.as_posix())
        if name is not None:
            return name
    return None
