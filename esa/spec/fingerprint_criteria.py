"""Criterion kinds on fingerprint runs (esa.spec.fingerprint_runs): does a score from the sensitivity map rank
backdoored siblings above clean ones?"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from esa.spec.criteria import Comparator, Ident, _CriterionBase
from esa.spec.fingerprint_runs import FingerprintScore


class FingerprintAuc(_CriterionBase):
    """AUC of a sibling score for backdoored vs clean: ``shift`` (how far the global top-k set moved from the base
    model's) or ``profile`` (leave-one-out nearest centroid on matrix shares of score mass). Each seed's 95% CI is a
    stratified bootstrap over siblings; graded on the envelope over seeds against 0.5 (no structure). Inconclusive
    when the backdoor did not take (poisoned siblings no more likely to complete the trigger with the target)."""

    run_kind: ClassVar[str] = "fingerprint"
    kind: Literal["fingerprint_auc"]
    run: Ident = Field(description="id of a fingerprint run")
    score: FingerprintScore = "shift"
    comparator: Comparator = ">"
    threshold: float = Field(0.5, ge=0, le=1)


FINGERPRINT_CRITERION_MODELS = (FingerprintAuc,)
