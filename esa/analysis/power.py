"""Power of the one-sided paired t-test (statsmodels ``TTestPower``) at an observed effect size d_z."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from statsmodels.stats.power import TTestPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from esa.analysis.paired import PairedTest


@dataclass
class PowerResult:
    effect_size: float  # Cohen's d_z of the paired differences
    n: int
    alpha: float
    power: float  # at the observed effect and n
    target_power: float
    n_for_target: float  # windows needed for target_power at the observed effect (ceil); NaN with a reason
    reason: str
    alternative: str = "larger"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def posthoc_power(effect_size: float, n: int, *, alpha: float = 0.05, target_power: float = 0.8) -> PowerResult:
    """Power at the observed d_z and n, and the n that would give ``target_power`` at that effect.

    Power at the observed effect is a restatement of the p-value, not new evidence; the useful number is
    ``n_for_target``, for sizing a rerun. d ≤ 0 or non-finite d gives NaN with the reason.
    """
    nan = float("nan")
    d = float(effect_size)
    res = dict(effect_size=d, n=int(n), alpha=alpha, target_power=target_power)
    if not math.isfinite(d):
        return PowerResult(power=nan, n_for_target=nan, reason=f"effect size is {d}", **res)
    if d <= 0:
        return PowerResult(power=nan, n_for_target=nan,
                           reason=f"effect size {d:.4g} ≤ 0: no effect in the tested direction", **res)
    analysis = TTestPower()
    reasons = []
    power = nan
    if n >= 2:
        power = float(analysis.power(effect_size=d, nobs=n, alpha=alpha, alternative="larger"))
    else:
        reasons.append(f"n = {n}: a t-test needs at least 2 windows")
    if analysis.power(effect_size=d, nobs=2, alpha=alpha, alternative="larger") >= target_power:
        n_target = 2.0  # the root finder fails when the smallest t-test already has the power
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported below as a reason instead
            needed = float(analysis.solve_power(effect_size=d, power=target_power, alpha=alpha,
                                                alternative="larger"))
        n_target = float(math.ceil(needed)) if math.isfinite(needed) else nan
        if not math.isfinite(needed):
            reasons.append("solve_power did not converge")
    return PowerResult(power=power, n_for_target=n_target, reason="; ".join(reasons), **res)


def power_of(test: PairedTest, *, alpha: float = 0.05, target_power: float = 0.8) -> PowerResult:
    """``posthoc_power`` for a ``compare_paired``/``compare_to_baseline`` result."""
    if test.status != "ok":
        nan = float("nan")
        return PowerResult(test.cohen_dz, test.n, alpha, nan, target_power, nan,
                           f"test is {test.status}: {test.reason}")
    return posthoc_power(test.cohen_dz, test.n, alpha=alpha, target_power=target_power)


__all__ = ["PowerResult", "posthoc_power", "power_of"]
