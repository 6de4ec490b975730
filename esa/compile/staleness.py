"""Is a generated file on disk still what the specs compile to? Compared as DVC reads it, not byte for byte.

`dvc exp run -S key=value` rewrites params.yaml through ruamel's round trip even when the value is unchanged
(`components: null` becomes `components:`, long strings wrap, quotes go), so bytes differ while every value is
the same. A file is current when it names the same source specs (path and sha256, the header `esa compile`
reads back) and holds the same values, parsed with the loader DVC uses for params, types included (7 is not 7.0).
"""

from __future__ import annotations

from typing import Any

from esa.compile.emit import SOURCE_LINE


def _parsed(text: str) -> Any:
    """The file's values as DVC reads them (YAML 1.2: `yes` stays a string), or None when it does not parse."""
    from dvc.utils.serialize import parse_yaml  # DVC's own params loader; imported only for a check

    try:
        return parse_yaml(text, "<generated file>")
    except Exception:  # corrupted or hand-broken YAML: the file is stale, not an error of the check
        return None


def _typed(value: Any) -> Any:
    """Values with their types, so that 1, 1.0 and true (equal in Python) differ; floats by repr (NaN == NaN)."""
    if isinstance(value, dict):
        return {"dict": sorted((repr(key), _typed(item)) for key, item in value.items())}
    if isinstance(value, list):
        return {"list": [_typed(item) for item in value]}
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def same_content(expected: str, actual: str) -> bool:
    """True when ``actual`` (on disk) holds the values and source specs of ``expected`` (just compiled)."""
    if expected == actual:
        return True
    if SOURCE_LINE.findall(expected) != SOURCE_LINE.findall(actual):
        return False
    parsed = _parsed(actual)
    return parsed is not None and _typed(parsed) == _typed(_parsed(expected))
