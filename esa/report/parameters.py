"""Page parameters for the offline renderer, as papermill and Quarto's Jupyter engine handle them.

A page declares its parameters in a code cell tagged `parameters` (`#| tags: [parameters]`) with their defaults;
overrides become a cell injected right after it (at the top when no cell is tagged), so the page's own code
sees the overridden values.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import nbformat

INJECTED_TAG = "injected-parameters"


def _tags(cell: Any, options: Mapping[str, Any]) -> list[str]:
    tags = options.get("tags") or []
    tags = [tags] if isinstance(tags, str) else list(tags)
    return tags + list(cell.get("metadata", {}).get("tags") or [])


def injection_index(cells: Sequence[Any], options: Sequence[Mapping[str, Any]]) -> int:
    """Where the injected cell goes: after the first cell tagged `parameters`, else before the first cell."""
    tagged = [i for i, (cell, opts) in enumerate(zip(cells, options))
              if cell.get("cell_type") == "code" and "parameters" in _tags(cell, opts)]
    if not tagged:
        warnings.warn("the page has no cell tagged 'parameters'; the parameters are set at its top", stacklevel=3)
        return 0
    return tagged[0] + 1


def parameters_cell(params: Mapping[str, Any]) -> nbformat.NotebookNode:
    """A hidden code cell assigning each parameter (Python literals, as papermill writes them)."""
    for name in params:
        if not str(name).isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
    lines = ["#| include: false", "# Injected parameters", *(f"{name} = {value!r}" for name, value in params.items())]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    return cell


def is_injected(cell: Any) -> bool:
    return INJECTED_TAG in (cell.get("metadata", {}).get("tags") or [])


def quarto_args(params: Mapping[str, Any] | None) -> list[str]:
    """`-P name:value` for each parameter (Quarto reads the value as YAML)."""
    return [arg for name, value in (params or {}).items() for arg in ("-P", f"{name}:{value}")]
