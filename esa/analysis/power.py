"""Power of the test that is graded: a one-sided Wilcoxon signed-rank on per-document differences, Holm-corrected.

statsmodels has no Wilcoxon power, so the t-test power (``TTestPower``) stands in at the Wilcoxon's asymptotic
relative efficiency against the t-test under normality, 3/π: a Wilcoxon on n documents is worth a t-test on
n·3/π. Holm's first step tests at α/m, so α/m (the Bonferroni bound) is the conservative level for m tests.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from statsmodels.stats.power import TTestPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from esa.analysis.paired import PairedTest

WILCOXON_ARE = 3 / math.pi
POWER_METHOD = ("one-sided Wilcoxon signed-rank on per-document differences at α/m (Bonferroni bound of Holm over "
                "m distinct tests): statsmodels TTestPower with nobs = n_documents·3/π (the Wilcoxon's asymptotic "
                "relative efficiency against the t-test)")


@dataclass
class PowerResult:
    effect_size: float  # Cohen's d_z of the per-document differences (the stated effect)
    n: int  # documents
    alpha: float  # the criterion's α
    m_tests: int  # distinct tests in the Holm family
    alpha_test: float  # α / m
    power: float  # at effect_size and n
    target_power: float
    n_for_target: float  # documents needed for target_power at effect_size (ceil); NaN with a reason
    reason: str
    method: str = POWER_METHOD
    alternative: str = "larger"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilcoxon_power(effect_size: float, n_docs: int, *, alpha: float = 0.05, m_tests: int = 1,
                   target_power: float = 0.8) -> PowerResult:
    """Power of the one-sided Wilcoxon on ``n_docs`` documents at α/m for a true d_z of ``effect_size``, and the
    documents needed for ``target_power`` (``POWER_METHOD``). d ≤ 0 or non-finite d gives NaN with the reason."""
    nan = float("nan")
    d, m = float(effect_size), max(int(m_tests), 1)
    level = alpha / m
    res = dict(effect_size=d, n=int(n_docs), alpha=alpha, m_tests=m, alpha_test=level, target_power=target_power)
    if not math.isfinite(d):
        return PowerResult(power=nan, n_for_target=nan, reason=f"effect size is {d}", **res)
    if d <= 0:
        return PowerResult(power=nan, n_for_target=nan,
                           reason=f"effect size {d:.4g} ≤ 0: no effect in the tested direction", **res)
    analysis = TTestPower()
    reasons, power = [], nan
    nobs = n_docs * WILCOXON_ARE
    if nobs >= 2:
        power = float(analysis.power(effect_size=d, nobs=nobs, alpha=level, alternative="larger"))
    else:
        reasons.append(f"{n_docs} documents: too few for the approximation (needs n·3/π ≥ 2)")
    if analysis.power(effect_size=d, nobs=2, alpha=level, alternative="larger") >= target_power:
        needed = 2.0  # the root finder fails when the smallest test already has the power
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported below as a reason instead
            needed = float(analysis.solve_power(effect_size=d, power=target_power, alpha=level,
                                                alternative="larger"))
        if not math.isfinite(needed):
            reasons.append("solve_power did not converge")
    n_target = float(math.ceil(needed / WILCOXON_ARE)) if math.isfinite(needed) else nan
    return PowerResult(power=power, n_for_target=n_target, reason="; ".join(reasons), **res)


def power_of(test: PairedTest, *, alpha: float = 0.05, m_tests: int = 1, target_power: float = 0.8) -> PowerResult:
    """``wilcoxon_power`` at the observed d_z and document count of a ``compare_paired`` result."""
    if test.status != "ok":
        nan, m = float("nan"), max(int(m_tests), 1)
        return PowerResult(test.cohen_dz, test.n, alpha, m, alpha / m, nan, target_power, nan,
                           f"test is {test.status}: {test.reason}")
    return wilcoxon_power(test.cohen_dz, test.n, alpha=alpha, m_tests=m_tests, target_power=target_power)


__all__ = ["WILCOXON_ARE", "POWER_METHOD", "PowerResult", "wilcoxon_power", "power_of"]
