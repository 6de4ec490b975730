"""Spec language: pydantic models of a phase spec and a loader that keeps YAML line numbers."""

from esa.spec.errors import SpecError, SpecErrors
from esa.spec.loader import load_spec
from esa.spec.models import Spec

__all__ = ["Spec", "SpecError", "SpecErrors", "load_spec"]
