"""The spec of one research phase: hypotheses, success criteria, runs and sweeps."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from esa.spec.criteria import Criterion, Ident
from esa.spec.runs import Run


class Hypothesis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    statement: str = Field(min_length=1)


class Sweep(BaseModel):
    """A run template crossed over ``matrix``: one run per combination, id = [id-]value-value…"""

    model_config = ConfigDict(extra="allow")

    id: Ident | None = None
    kind: str
    matrix: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: int = Field(ge=1, le=5)
    title: str = Field(min_length=1)
    description: str = ""
    hypotheses: list[Hypothesis] = Field(min_length=1)
    criteria: list[Criterion] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict, description="run fields applied to every run and sweep")
    runs: list[Run] = Field(default_factory=list, description="runs, with sweeps expanded into them")
    sweeps: list[Sweep] = Field(default_factory=list)

    # Filled by the loader: where the spec came from and which runs each sweep generated.
    _source: str = PrivateAttr("")
    _sha256: str = PrivateAttr("")
    _sweep_members: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _where: Any = PrivateAttr(None)  # source path -> (line, col)
    _origin: dict = PrivateAttr(default_factory=dict)  # (run index, field) -> source path

    def error_at_run(self, run_id: str, field: str | None, message: str):
        """A located error about one run's field, for checks made after loading (e.g. across specs)."""
        from esa.spec.errors import SpecError

        index = next(i for i, run in enumerate(self.runs) if run.id == run_id)
        path = self._origin.get((index, field), self._origin.get((index, None), ("runs", index)))
        line, col = self._where(path) if self._where else (1, 1)
        return SpecError(self._source, line, col, tuple(path), message)

    @property
    def name(self) -> str:
        return f"phase{self.phase}"

    @property
    def source(self) -> str:
        return self._source

    @property
    def sha256(self) -> str:
        return self._sha256

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
