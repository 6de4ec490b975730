"""What wires a run kind: the record every module in esa.kinds defines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from esa.compile.plan import Plan
from esa.spec import Spec


@dataclass(frozen=True)
class RunKind:
    name: str  # the spec's `kind:` value
    run_model: type  # its pydantic spec model (esa.spec.runs)
    # Compile rule: adds the run's stages to the plan; returns the files the grade stage reads.
    build: Callable[[Plan, Spec, Any, dict[str, Spec]], list[str]]
    # Grade-stage analysis over every run of this kind in a spec: writes its side files under results/<spec>/ and
    # returns its part of analysis.json ({"runs": {run id: ...}, ...}); None when graders read the stages directly.
    analyze: Callable[[Spec, Path], dict] | None
    outputs: tuple[str, ...]  # files the analysis writes under results/<spec>/ (stage outs)
    graders: ModuleType  # the module whose @evaluator functions grade the criteria of this kind

    def criteria(self) -> list[str]:
        """Criterion kinds that grade runs of this kind (declared by each criterion's ``run_kind``)."""
        from esa.spec.criteria import CRITERIA

        return [name for name, model in CRITERIA.items() if model.run_kind == self.name]
