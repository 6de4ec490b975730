"""Spec literals built from esa.registry, so a name is written once (JSON schema enums come from these)."""

from __future__ import annotations

from typing import Literal

from esa.names import CONTROLS, METRICS, MODES, PERTURBATIONS, TARGETS

MetricName = Literal[tuple(METRICS)]
Mode = Literal[MODES]
Perturbation = Literal[tuple(PERTURBATIONS)]
Target = Literal[TARGETS]
Control = Literal[CONTROLS]
