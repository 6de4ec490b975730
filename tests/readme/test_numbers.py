"""Quoted numbers: what counts as one, and when a cited value supports it (rounding to the quoted precision)."""

import json

import pytest

from esa.readme.numbers import cited_values, found, quoted_numbers


def texts(prose):
    return [q.text for _, q in quoted_numbers(prose)]


def test_numbers_are_read_with_signs_exponents_separators_and_percent():
    prose = "PPL 7.31 → 53.2, ratio −0.9, p 2.2e-9, 1,797 columns, CV 13.5%, range 0.46–0.52"
    assert texts(prose) == ["7.31", "53.2", "−0.9", "2.2e-9", "1,797", "13.5%", "0.46", "0.52"]
    values = {q.text: q.value for _, q in quoted_numbers(prose)}
    assert values["1,797"] == 1797 and values["2.2e-9"] == pytest.approx(2.2e-9) and values["−0.9"] == 0.9
    assert [q.percent for _, q in quoted_numbers("CI 1.44–1.96%, 3–4 seeds")] == [True, True, False, False]


def test_names_code_comments_and_links_are_not_numbers():
    prose = "top-100 of Llama-7B (1.9M params) `k=50` <!-- 12 --> [see](https://x.org/3) ref-2xs"
    assert texts(prose) == ["100"]


@pytest.mark.parametrize("quoted, value, ok", [
    ("0.19", 0.1874, True), ("0.19", 0.1849, False), ("0.190", 0.1874, False), ("33.4", 33.449, True),
    ("33.4", 33.46, False), ("2.2e-9", 2.24e-9, True), ("2.2e-9", 2.3e-9, False), ("13.5%", 0.1352, True),
    ("13.5%", 13.5, True), ("−0.9", -0.9, True), ("3", 3.4, True), ("3", 3.6, False), ("1,797", 1797, True),
])
def test_a_quoted_number_is_found_when_a_cited_value_rounds_to_it(quoted, value, ok):
    (_, number), = quoted_numbers(quoted)
    assert found(number, [abs(value)]) is ok


def test_cited_values_include_numbers_written_inside_strings(tmp_path):
    path = tmp_path / "grades.json"
    path.write_text(json.dumps({"a": {"value": -0.25, "reason": "ΔPPL super 2.97e+09 vs random_k 0.107"},
                                "flag": True, "n": 3}))
    assert cited_values(path) == sorted({0.25, 2.97e9, 0.107, 3.0})


def test_cited_values_of_a_parquet_table_are_its_numeric_cells(tmp_path):
    import pandas as pd

    path = tmp_path / "conditions.parquet"
    pd.DataFrame({"target": ["super", "random_k"], "n_grew": [0, 24], "delta_ppl": [15.1, float("nan")]}).to_parquet(path)
    assert cited_values(path) == [0.0, 15.1, 24.0]
