"""Every run kind a spec may declare, as one tagged union on ``kind``: the measurement runs of esa.spec.runs, the
runs that read other runs' results (esa.spec.scaling_runs, esa.spec.architecture_runs) and the Phase-5
applications (esa.spec.prune_runs, esa.spec.adapt_runs, esa.spec.fault_runs,
esa.spec.interpret_runs, esa.spec.fingerprint_runs)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from esa.spec.runs import AblationRun, EvalRun, PerturbRun, ScoreRun
from esa.spec.architecture_runs import ArchitectureRun
from esa.spec.adapt_runs import AdaptRun
from esa.spec.fault_runs import FaultRun
from esa.spec.interpret_runs import InterpretRun
from esa.spec.fingerprint_runs import FingerprintRun
from esa.spec.prune_runs import PruneRun
from esa.spec.scaling_runs import ScalingRun

RUN_MODELS = (EvalRun, ScoreRun, AblationRun, PerturbRun, ScalingRun, ArchitectureRun, PruneRun, AdaptRun,
              FaultRun, InterpretRun, FingerprintRun)
Run = Annotated[Union[RUN_MODELS], Field(discriminator="kind")]
RUN_KINDS = tuple(cls.model_fields["kind"].annotation.__args__[0] for cls in RUN_MODELS)


def fields_by_kind() -> dict[str, set[str]]:
    """Each run kind's field names, so that `defaults` can hold a field of one kind (e.g. a score run's
    microbatch) in a spec that also has runs of other kinds."""
    return {cls.model_fields["kind"].annotation.__args__[0]: set(cls.model_fields) for cls in RUN_MODELS}
