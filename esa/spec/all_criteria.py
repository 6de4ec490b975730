"""Every criterion kind a spec may declare, as one tagged union on ``kind``: those of esa.spec.criteria and those
of the later run kinds (esa.spec.scaling_criteria, esa.spec.architecture_criteria, esa.spec.prune_criteria,
esa.spec.adapt_criteria).
Importing this module also lists them in
``esa.spec.criteria.CRITERIA``, the kind → model table the loader and the run kinds consult."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from esa.spec.criteria import CRITERIA, CRITERION_MODELS
from esa.spec.architecture_criteria import ARCHITECTURE_CRITERION_MODELS
from esa.spec.adapt_criteria import ADAPT_CRITERION_MODELS
from esa.spec.fault_criteria import FAULT_CRITERION_MODELS
from esa.spec.interpret_criteria import INTERPRET_CRITERION_MODELS
from esa.spec.fingerprint_criteria import FINGERPRINT_CRITERION_MODELS
from esa.spec.prune_criteria import PRUNE_CRITERION_MODELS
from esa.spec.scaling_criteria import SCALING_CRITERION_MODELS

LATER_KINDS = (*SCALING_CRITERION_MODELS, *ARCHITECTURE_CRITERION_MODELS, *PRUNE_CRITERION_MODELS,
               *ADAPT_CRITERION_MODELS, *FAULT_CRITERION_MODELS,
               *INTERPRET_CRITERION_MODELS, *FINGERPRINT_CRITERION_MODELS)
ALL_CRITERION_MODELS = (*CRITERION_MODELS, *LATER_KINDS)
CRITERIA.update({model.model_fields["kind"].annotation.__args__[0]: model for model in LATER_KINDS})

Criterion = Annotated[Union[ALL_CRITERION_MODELS], Field(discriminator="kind")]
