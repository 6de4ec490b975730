"""Each criterion's value and verdict as numbers only, the part of grades.json that `dvc exp show` and
`esa compare` read.

DVC shows a metrics file's numbers as columns and drops nulls; strings ("nan", reasons) would only add noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Ordered so that a larger code is a better verdict: sorting `dvc exp show --sort-by …status_code` ranks runs.
STATUS_CODES = {"pass": 1, "inconclusive": 0, "fail": -1}
STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}


def finite(value: Any) -> float | None:
    """A finite float, else None (non-finite values are written as strings elsewhere, which DVC cannot plot)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def criterion_values(grade: Mapping[str, Any]) -> dict[str, float | int | None]:
    ci = grade.get("ci")
    low, high = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return {
        "value": finite(grade.get("value")),
        "status_code": STATUS_CODES.get(str(grade.get("status")), 0),
        "ci_low": finite(low),
        "ci_high": finite(high),
    }


def criteria_values(criteria: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """{criterion id: {value, status_code, ci_low, ci_high}} from grades.json's "criteria" section."""
    return {cid: criterion_values(grade) for cid, grade in criteria.items()}
