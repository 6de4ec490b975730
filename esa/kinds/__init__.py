"""Run kinds, each wired in one module: its spec model, compile rule, grade-stage analysis and graders.

A phase is just a spec; what its runs are decides what is compiled, analysed and graded. A new kind is one module
here (a ``RunKind``) plus one entry in ``KINDS`` (and its spec model in esa.spec.runs); the tests in tests/kinds
show what such a module must be tested for. Criteria name the kind of run they grade (``run_kind``), so the spec
loader routes them without knowing the kinds.
"""

from __future__ import annotations

from esa.kinds import (ablation, adapt, architecture, evaluation, faults, fingerprint, interpret, perturb, prune,
                       scaling, score)
from esa.kinds.base import RunKind
from esa.spec import Spec
from esa.spec.all_runs import RUN_KINDS

KINDS: dict[str, RunKind] = {kind.name: kind for kind in (evaluation.KIND, score.KIND, ablation.KIND, perturb.KIND,
                                                         scaling.KIND, architecture.KIND, prune.KIND,
                                                         adapt.KIND, faults.KIND, interpret.KIND,
                                                         fingerprint.KIND)}
if tuple(KINDS) != RUN_KINDS:
    raise RuntimeError(f"run kinds wired here {tuple(KINDS)} differ from the spec's {RUN_KINDS}")


def kinds_of(spec: Spec) -> list[RunKind]:
    """The kinds of run ``spec`` holds, in registry order (the order their analyses run and merge)."""
    present = {run.kind for run in spec.runs}
    return [kind for name, kind in KINDS.items() if name in present]


def grade_outputs(spec: Spec) -> tuple[str, ...]:
    """What the spec's grade stage writes besides grades.json: its kinds' analysis files, each once."""
    return tuple(dict.fromkeys(name for kind in kinds_of(spec) for name in kind.outputs))
