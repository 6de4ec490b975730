"""Numbers quoted in prose, and whether each can be found, at its quoted precision, in the files it cites.

A quoted number matches a cited value when the value rounds to it: "0.19" matches 0.1874 (half a unit in the last
quoted place), "2.2e-9" matches 2.24e-9, "13.5%" matches 0.135 or 13.5. Magnitudes are compared, so "fell by 0.3"
matches −0.3. Cited values are every number in a JSON or YAML file (numbers written inside strings included,
as grades.json's reasons carry them), every numeric cell of a Parquet table, or every number written in any other
text file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# A number not glued to a word on its left (top-100 → 100; Llama-7B, 1.9M, x86 → skipped), with an optional minus
# (ASCII or U+2212) where it is a sign, thousands separators, decimals, an exponent and a percent sign.
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[−-](?=\d))?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?(?P<exponent>[eE][−+-]?\d+)?(?P<percent>%)?"
    r"(?![\w.]*[A-Za-z_])")
_SKIP = re.compile(r"`[^`]*`|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.DOTALL)  # code, comments, link targets


@dataclass(frozen=True)
class Quoted:
    text: str
    value: float
    tolerance: float  # half a unit in the last quoted place
    percent: bool


def _parse(match: re.Match) -> Quoted:
    digits, decimals = match["digits"].replace(",", ""), match["decimals"] or ""
    exponent = int((match["exponent"] or "e0")[1:].replace("−", "-"))
    value = float(digits + decimals) * 10.0 ** exponent
    places = len(decimals) - 1 if decimals else 0
    return Quoted(match.group(0), value, 0.5 * 10.0 ** (exponent - places), bool(match["percent"]))


def quoted_numbers(prose: str) -> Iterator[tuple[int, Quoted]]:
    """(line offset, number) for every number in ``prose`` outside code spans, comments and link targets."""
    kept = _SKIP.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    for offset, line in enumerate(kept.split("\n")):
        matches = list(NUMBER.finditer(line))
        for match, after in zip(matches, [*matches[1:], None]):
            number = _parse(match)
            # "1.44–1.96%": a range's percent sign belongs to both ends.
            if after is not None and after["percent"] and line[match.end():after.start()] in ("–", "-", " – "):
                number = Quoted(number.text, number.value, number.tolerance, True)
            yield offset, number


def _walk(data: Any) -> Iterator[float]:
    if isinstance(data, bool) or data is None:
        return
    if isinstance(data, (int, float)):
        if math.isfinite(data):
            yield abs(float(data))
    elif isinstance(data, str):
        yield from (q.value for _, q in quoted_numbers(data))
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _walk(key)
            yield from _walk(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from _walk(value)


def cited_values(path: Path) -> list[float]:
    """Every number in the file, as magnitudes, sorted (NaN and infinities left out)."""
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return sorted(set(_walk(frame.select_dtypes("number").to_numpy().ravel().tolist())))
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        values = _walk(json.loads(text))
    elif path.suffix in (".yaml", ".yml"):
        values = _walk(yaml.safe_load(text))
    else:
        values = _walk(text)
    return sorted(set(values))


def found(number: Quoted, values: Iterable[float]) -> bool:
    """Whether some cited value rounds to the quoted number (a percentage may be cited as a fraction)."""
    targets = [number.value]
    tolerances = [number.tolerance]
    if number.percent:
        targets.append(number.value / 100)
        tolerances.append(number.tolerance / 100)
    for value in values:
        for target, tolerance in zip(targets, tolerances):
            if abs(value - target) <= tolerance * (1 + 1e-9):
                return True
    return False
