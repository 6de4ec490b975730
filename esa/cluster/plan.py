"""What a cluster has to run: the DVC stages that are not up to date (and those downstream of them), in layers of
stages that do not depend on each other. The graph and the status come from DVC itself."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path


class ClusterError(Exception):
    """A one-line problem with what `esa submit` was asked to do (exit code 2)."""


@dataclass(frozen=True)
class StageJob:
    name: str  # as `dvc repro`/`dvc commit` address it
    cmd: str  # the stage's own command from dvc.yaml
    wdir: str  # where it runs, relative to the project root ("." for the root)


@dataclass(frozen=True)
class ClusterPlan:
    layers: list[list[StageJob]]  # layer k depends only on layers before it

    @property
    def stages(self) -> list[StageJob]:
        return [job for layer in self.layers for job in layer]


def layer_stages(deps: dict[str, set[str]], stale: set[str]) -> list[list[str]]:
    """Topological layers of the stages to run: the stale ones and every stage downstream of one (its inputs will
    change). A stage's layer is one more than the deepest stage it depends on among those run; names sorted."""
    downstream: dict[str, set[str]] = {name: set() for name in deps}
    for name, upstream in deps.items():
        for dep in upstream:
            downstream.setdefault(dep, set()).add(name)
    run: set[str] = set()
    pending = sorted(stale & set(downstream))
    while pending:
        name = pending.pop()
        if name not in run:
            run.add(name)
            pending.extend(downstream[name])
    level: dict[str, int] = {}

    def depth(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            raise ClusterError(f"dvc.yaml has a dependency cycle through {name}")
        if name not in level:
            upstream = [depth(dep, (*path, name)) for dep in deps.get(name, ()) if dep in run]
            level[name] = 1 + max(upstream, default=-1)
        return level[name]

    for name in run:
        depth(name)
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in sorted(run):
        layers[level[name]].append(name)
    return layers


def read_plan(root: Path, targets: list[str]) -> ClusterPlan:
    """The layers of stages `dvc repro TARGETS…` would run (every stage of dvc.yaml when no target is given)."""
    if not (root / "dvc.yaml").exists():
        raise ClusterError(f"no dvc.yaml in {root}: run `esa compile SPEC` first")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:  # DVC addresses stages relative to the current folder, as `dvc commit` run in the project root will
        with contextlib.chdir(root), Repo(str(root)) as repo:
            stages = _pipeline_stages(repo, targets)
            jobs = {stage.addressing: _job(stage, root) for stage in stages}
            graph = repo.index.graph
            deps = {stage.addressing: {dep.addressing for dep in graph.successors(stage)} & set(jobs)
                    for stage in stages}
            stale = set(repo.status(targets=targets or None, with_deps=True)) & set(jobs)
    except DvcException as exc:
        raise ClusterError(f"dvc: {_one_line(exc)}") from None
    return ClusterPlan([[jobs[name] for name in layer] for layer in layer_stages(deps, stale)])


def _pipeline_stages(repo, targets: list[str]) -> list:
    from dvc.stage import PipelineStage

    if targets:
        collected = {stage for target in targets for stage in _collect(repo, target)}
    else:
        collected = set(repo.index.stages)
    # .dvc files (`dvc add`) have no command to run: they are data, not work.
    pipeline = [stage for stage in collected if isinstance(stage, PipelineStage)]
    return sorted(pipeline, key=lambda stage: stage.addressing)


def _collect(repo, target: str) -> list:
    from dvc.exceptions import DvcException

    try:
        return repo.stage.collect(target, with_deps=True)
    except DvcException as exc:
        raise ClusterError(f"unknown target '{target}': {_one_line(exc)}") from None


def _job(stage, root: Path) -> StageJob:
    cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)  # DVC allows a list of commands
    wdir = Path(stage.wdir).resolve().relative_to(root.resolve()).as_posix()
    return StageJob(stage.addressing, cmd, wdir)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
