"""The spec of one research phase: hypotheses, success criteria, runs and sweeps."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from esa.spec.corpora import SpecCorpus
from esa.spec.all_criteria import Criterion
from esa.spec.criteria import Ident
from esa.spec.all_runs import Run

PHASE_NAME = re.compile(r"phase[0-9]+")
# Folders under results/ that belong to no spec.
RESERVED_NAMES = {"baselines": "the shared unperturbed evaluations of perturb runs"}


class Hypothesis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    statement: str = Field(min_length=1)


class Resources(BaseModel):
    """What a stage asks a cluster scheduler for (`esa submit --slurm`); a field left out falls back to the
    command's flag or the scheduler's default. Compile ignores it: where a stage runs never changes what it
    computes. (Here rather than in a module of its own, which every grade stage would gain as a code dep.)"""

    model_config = ConfigDict(extra="forbid")

    cpus: int | None = Field(None, ge=1, description="CPU cores per stage (--cpus-per-task)")
    mem_gb: float | None = Field(None, gt=0, description="memory per stage in GiB (--mem)")
    gpus: int | None = Field(None, ge=0, description="GPUs per stage (--gres=gpu:N)")
    time_minutes: int | None = Field(None, ge=1, description="wall-clock limit per stage in minutes (--time)")
    partition: str | None = Field(None, min_length=1, description="scheduler partition (queue)")


class SpecResources(Resources):
    """The spec's request for its stages, with per-run (or per-sweep) fields that win over it."""

    runs: dict[Ident, Resources] = Field(default_factory=dict, description=(
        "fields for the stages of one run or of every run of a sweep, by run or sweep id"))


class Sweep(BaseModel):
    """A run template crossed over ``matrix``: one run per combination, id = [id-]value-value…"""

    model_config = ConfigDict(extra="allow")

    id: Ident | None = None
    kind: str
    matrix: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: int = Field(ge=1, le=5)
    name: Ident | None = Field(None, description=(
        "names the spec's results (results/<name>/), stages (grade.<name>) and params; default phase<N>. "
        "Set it to keep several specs of one phase apart, e.g. real-phase1"))
    title: str = Field(min_length=1)
    description: str = ""
    hypotheses: list[Hypothesis] = Field(min_length=1)
    criteria: list[Criterion] = Field(default_factory=list)
    corpora: dict[Ident, SpecCorpus] = Field(default_factory=dict, description=(
        "the spec's own corpora (local text files or a Hugging Face dataset), named by runs' `data:` like the "
        "registry's (stdlib, stdlib-tiny)"))
    defaults: dict[str, Any] = Field(default_factory=dict, description=(
        "run fields applied to every run and sweep whose kind has the field (e.g. a score run's microbatch or "
        "accum_dtype leaves eval runs alone); a run's own value wins"))
    runs: list[Run] = Field(default_factory=list, description="runs, with sweeps expanded into them")
    sweeps: list[Sweep] = Field(default_factory=list)
    resources: SpecResources | None = Field(None, description=(
        "CPUs, memory, GPUs, time and partition its stages ask a cluster for (`esa submit --slurm`); "
        "compile ignores it"))

    # Filled by the loader: where the spec came from and which runs each sweep generated.
    _source: str = PrivateAttr("")
    _sha256: str = PrivateAttr("")
    _sweep_members: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _where: Any = PrivateAttr(None)  # source path -> (line, col)
    _origin: dict = PrivateAttr(default_factory=dict)  # (run index, field) -> source path
    _name_written: bool = PrivateAttr(False)  # False: the name is the default phase<N>
    _warnings: list = PrivateAttr(default_factory=list)  # set by the compiler: settings the grader ignores

    @model_validator(mode="after")
    def _default_name(self):
        if self.name is None:
            self.name = f"phase{self.phase}"
        elif PHASE_NAME.fullmatch(self.name) and self.name != f"phase{self.phase}":
            # The phaseN pages and `esa log --phase N` read results/phaseN as phase N's.
            raise ValueError(f"name '{self.name}' is the default name of phase-{self.name[5:]} specs; "
                             f"this is a phase-{self.phase} spec")
        elif self.name in RESERVED_NAMES:
            raise ValueError(f"name '{self.name}' is reserved: results/{self.name}/ holds {RESERVED_NAMES[self.name]}")
        return self

    def error_at_name(self, message: str):
        """A located error about the spec's name: at its `name:` key, or at `phase:` when the name is the default."""
        from esa.spec.errors import SpecError

        key = "name" if self._name_written else "phase"
        line, col = self._where((key,)) if self._where else (1, 1)
        return SpecError(self._source, line, col, ("name",), message)

    def error_at(self, path: tuple, message: str):
        """A located error about a source path (e.g. ('criteria', 2, 'k')), for checks made after loading."""
        from esa.spec.errors import SpecError

        line, col = self._where(path) if self._where else (1, 1)
        return SpecError(self._source, line, col, tuple(path), message)

    def error_at_run(self, run_id: str, field: str | None, message: str):
        """A located error about one run's field, for checks made after loading (e.g. across specs)."""
        from esa.spec.errors import SpecError

        index = next(i for i, run in enumerate(self.runs) if run.id == run_id)
        path = self._origin.get((index, field), self._origin.get((index, None), ("runs", index)))
        line, col = self._where(path) if self._where else (1, 1)
        return SpecError(self._source, line, col, tuple(path), message)

    @property
    def source(self) -> str:
        return self._source

    @property
    def warnings(self) -> list:
        return self._warnings

    @property
    def sha256(self) -> str:
        return self._sha256

    def sweep_members(self, sweep_id: str) -> list[str]:
        """Ids of the runs a sweep with this id generated (none for a plain run id)."""
        return list(self._sweep_members.get(sweep_id, []))

    def sweep_of(self, run_id: str) -> str | None:
        """The id of the sweep that generated this run, if the sweep has one."""
        return next((sweep for sweep, members in self._sweep_members.items() if run_id in members), None)

    def run(self, run_id: str) -> Run:
        return next(run for run in self.runs if run.id == run_id)

    def select_runs(self, selector: str | list[str]) -> list[Run]:
        """Runs named by a criterion's ``runs:`` (``all``, run ids, or sweep ids)."""
        if selector == "all":
            return list(self.runs)
        wanted: list[str] = []
        for name in selector:
            wanted.extend(self._sweep_members.get(name, [name]))
        return [run for run in self.runs if run.id in wanted]
