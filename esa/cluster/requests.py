"""Each stage's resource request: its spec's `resources:` (a run's or sweep's own fields first), then the
command-line flags. The specs are those dvc.yaml's header records, so compile's output stays what it was."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from esa.spec.models import Resources


@dataclass(frozen=True)
class Request:
    """What one job array asks for; None leaves it to the scheduler's default."""

    cpus: int | None = None
    mem_gb: float | None = None
    gpus: int | None = None
    time_minutes: int | None = None
    partition: str | None = None

    def over(self, fallback: Request) -> Request:
        """This request, with the fields it leaves out taken from ``fallback``."""
        return replace(fallback, **{f.name: getattr(self, f.name) for f in fields(self)
                                    if getattr(self, f.name) is not None})


def from_resources(resources: Resources | None) -> Request:
    if resources is None:
        return Request()
    return Request(**{f.name: getattr(resources, f.name) for f in fields(Request)})


@dataclass(frozen=True)
class SpecRequests:
    """One spec's requests: for its stages in general and per run or sweep id."""

    name: str
    default: Request
    runs: dict[str, Request]
    sweep_of: dict[str, str]  # run id -> the sweep that generated it

    def for_run(self, run_id: str | None) -> Request:
        if run_id is None:
            return self.default
        own = self.runs.get(run_id) or self.runs.get(self.sweep_of.get(run_id, ""))
        return own.over(self.default) if own else self.default


def stage_owner(stage: str) -> tuple[str, str | None]:
    """(spec name, run id) a compiled stage name carries: `eval.phase1/standard-ref-s/seed1337` → (phase1,
    standard-ref-s), `grade.phase1` → (phase1, None). Shared stages (`corpus.stdlib`) name no spec of the plan."""
    _, _, rest = stage.partition(".")
    parts = rest.split("/")
    return parts[0], (parts[1] if len(parts) > 1 else None)


def stage_requests(stages: list[str], specs: list[SpecRequests], flags: Request) -> dict[str, Request]:
    """Every stage's request; stages of no spec (shared corpora, reference models) get the flags alone."""
    by_name = {spec.name: spec for spec in specs}
    requests = {}
    for stage in stages:
        spec_name, run_id = stage_owner(stage)
        spec = by_name.get(spec_name)
        requests[stage] = spec.for_run(run_id).over(flags) if spec else flags
    return requests


def recorded_spec_requests(root: Path) -> list[SpecRequests]:
    """The resource requests of the specs dvc.yaml was compiled from (none for a hand-written dvc.yaml)."""
    from esa.compile.emit import read_sources
    from esa.spec import load_spec

    found = []
    for source in read_sources(root / "dvc.yaml"):
        if not (root / source).exists():
            continue  # `esa compile` says so; submitting still works from dvc.yaml alone
        spec = load_spec(root / source)
        resources = spec.resources
        runs = {key: from_resources(value) for key, value in (resources.runs if resources else {}).items()}
        found.append(SpecRequests(spec.name, from_resources(resources), runs,
                                  {run.id: spec.sweep_of(run.id) or "" for run in spec.runs}))
    return found
