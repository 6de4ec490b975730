"""reports/phase3.qmd rendered offline against a tiny real Phase-3 project, and the data preparation behind it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from esa.report import charts, charts_phase3 as c3, tables_phase3 as t3, tables_phase3_stats as s3
from esa.report.render import external_refs

FIXTURE = Path(__file__).parent / "data" / "phase3"  # a project root: specs/ and results/phase3/



@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory, render_page) -> str:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return render_page(project, "phase3")


def test_criteria_and_statuses(html: str) -> None:
    grades = json.loads((FIXTURE / "results/phase3/grades.json").read_text())
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    for cid, criterion in grades["criteria"].items():
        row = next(r for r in rows if f"<code>{cid}</code>" in r)
        assert f'class="badge badge-{criterion["status"]}"' in row
    assert "Phase 3 — perturbation validation" in html


def test_sections_charts_and_findings(html: str) -> None:
    assert html.count("<svg") >= 2
    for section in ("What was perturbed", "ΔPPL by condition", "Statistics", "Dose-response", "Divergence",
                    "Repeatability", "How this was measured"):
        assert section in html
    assert "diverged" in html
    assert "Every set diverged under the exponent-MSB flip: the flip multiplies a weight below 2 in magnitude " \
           "by 2^128" in html
    assert "The hierarchy super &gt; random_k &gt; bottom_k holds" in html
    assert "gave identical ΔPPL in all 6 shared conditions" in html
    assert "top-20 weights per matrix by <code>grad_x_weight</code>" in html
    assert "64.7" in html  # the signflip super-vs-random_k median ratio, as graded
    assert "Traceback" not in html and "No results yet." not in html


def test_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert external_refs(html) == []


def test_missing_results_shows_notice(tmp_path: Path, render_page) -> None:
    shutil.copytree(FIXTURE / "specs", tmp_path / "specs")
    html = render_page(tmp_path, "phase3")
    assert "No results yet." in html and "results/phase3/grades.json" in html
    assert "Traceback" not in html


# --- data preparation ------------------------------------------------------------------------------------


def _rows() -> pd.DataFrame:
    inf = math.inf
    return c3.condition_rows(conditions=pd.DataFrame({
        "run": "r", "seed": [1, 2, 3] * 3, "level": 1.0,
        "target": ["super"] * 3 + ["random_k"] * 3 + ["bottom_k"] * 3,
        "ppl": 10.0, "delta_ppl": [1.0, 2.0, 3.0, 0.5, inf, 0.7, inf, inf, inf],
        "status": ["ok"] * 4 + ["diverged"] + ["ok"] + ["diverged"] * 3, "n_touched": 40, "n_windows": 8,
    }))


def test_condition_summary_by_hand() -> None:
    out = c3.condition_summary(_rows()).set_index("target")
    sup = out.loc["super"]
    # mean 2, sd 1; 95% t-interval with 2 dof: 2 ± 4.302653 / √3.
    assert (sup["mean"], sup["sd"], sup["status"], sup["label"]) == (2.0, 1.0, "ok", "")
    assert sup["ci_low"] == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert sup["ci_high"] == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6)
    rnd = out.loc["random_k"]  # seed 2 diverged: mean of 0.5 and 0.7
    assert rnd["mean"] == pytest.approx(0.6) and rnd["n_diverged"] == 1
    assert (rnd["status"], rnd["label"]) == ("partly diverged", "1/3 diverged")
    bot = out.loc["bottom_k"]
    assert (bot["status"], bot["label"], bot["n_diverged"]) == ("diverged", "diverged", 3) and math.isnan(bot["mean"])
    assert list(out.index) == ["super", "random_k", "bottom_k"]


def test_condition_rows_reads_json_strings() -> None:
    analysis = {"runs": {"a": {"rows": [{"seed": 1, "level": 1.0, "target": "super", "ppl": "inf",
                                         "delta_ppl": "inf", "status": "diverged", "n_touched": 5}]},
                         "b": {"missing": ["x"]}}}
    rows = c3.condition_rows(analysis)
    assert rows.loc[0, "delta_ppl"] == math.inf and rows.loc[0, "run"] == "a" and len(rows) == 1
    assert c3.condition_rows(None).empty


def test_value_scale() -> None:
    scale, ticks, log = c3.value_scale([1.0, 5.0])
    assert not log and ticks is None
    scale, ticks, log = c3.value_scale([0.05, 20.0, np.nan, math.inf])
    assert log and scale.to_dict() == {"type": "symlog", "constant": 0.01}
    assert ticks == [0.0, 0.1, 1.0, 10.0, 100.0]
    _, ticks, _ = c3.value_scale([-0.5, 0.001, 3.0])
    assert ticks == [-1.0, -0.1, -0.01, 0.0, 0.01, 0.1, 1.0, 10.0]


def test_bar_and_dose_frames() -> None:
    rows = pd.concat([_rows(), _rows().assign(level=2.0, delta_ppl=lambda d: d["delta_ppl"] * 2)], ignore_index=True)
    summary = c3.condition_summary(rows)
    bars = c3.bar_frame(summary)
    assert set(bars["level"]) == {1.0} and set(bars["panel"]) == {"r (level 1)"}
    assert list(bars["column"]) == ["super", "random_k (1/3 diverged)", "bottom_k"]  # all-diverged: shaded
    dose = c3.dose_frame(rows, summary)
    seeds, means = dose[dose["kind"] == "seed"], dose[dose["kind"] == "mean"]
    assert len(seeds) == 2 * 5  # finite points only: 3 super + 2 random_k per level
    assert len(means) == 6
    assert means.set_index(["level", "target"]).loc[(2.0, "super"), "delta_ppl"] == 4.0
    assert c3.dose_runs(_rows()) == []
    charts.setup()
    assert c3.delta_chart(bars).to_dict()["facet"]["field"] == "panel"
    assert c3.dose_chart(dose).to_dict()["facet"]["column"]["field"] == "run"


# --- tables and sentences -----------------------------------------------------------------------------------


def _run(id: str, perturbation: str, **kw) -> SimpleNamespace:
    base = dict(id=id, perturbation=perturbation, levels=[], scale=1.0, sigma_mode="abs", bit="exponent_msb",
                prob=1.0, direction="ascend", unit="row", inner="zero", dtype="float32",
                controls=["random_k", "bottom_k"])
    return SimpleNamespace(**{**base, **kw})


def test_describe() -> None:
    assert t3.describe(_run("a", "sign_flip")) == "sign flip"
    assert t3.describe(_run("a", "bit_flip", bit=26, prob=0.05)) == "bit flip: bit 26 in 5% of the set"
    assert t3.describe(_run("a", "gauss_noise", scale=0.02)) == "Gaussian noise σ = 0.02·|w|"
    dose = _run("d", "gauss_noise", levels=[0.01, 0.1])
    assert t3.describe(dose) == "Gaussian noise σ = level·|w|"
    assert t3.describe(dose, 0.1) == "Gaussian noise σ = 0.1·|w|"


def _test(seed: int, ratio: float, lo: float, hi: float, p: float, power: float, n80: float,
          status: str = "ok") -> dict:
    return {"seed": seed, "level": 1.0, "a": "super", "b": "random_k", "wilcoxon_p_holm": 2 * p,
            "ratio": {"ratio": ratio, "ci_low": lo, "ci_high": hi, "status": status},
            "test": {"mean_diff": ratio / 100, "ci_low": lo / 100, "ci_high": hi / 100, "cohen_dz": ratio / 10,
                     "wilcoxon_p": p, "t_p": p / 10, "status": "ok"},
            "power": {"power": power, "n_for_target": n80}}


def test_stats_frame_pools_seeds_conservatively() -> None:
    analysis = {"runs": {"s": {"tests": [_test(1, 4.0, 2.0, 6.0, 1e-3, 0.9, 10.0),
                                         _test(2, 8.0, 5.0, 12.0, 1e-5, 0.7, 30.0, status="unstable")]}}}
    runs = [_run("s", "sign_flip")]
    row = s3.stats_frame(analysis, runs).iloc[0]
    assert (row["ratio"], row["ratio_low"], row["ratio_high"]) == (6.0, 2.0, 12.0)
    assert (row["diff"], row["d_z"]) == pytest.approx((0.06, 0.6))
    assert (row["wilcoxon_p"], row["holm_p"], row["t_p"]) == pytest.approx((1e-3, 2e-3, 1e-4))
    assert (row["power"], row["n_80"]) == (0.7, 30.0)
    assert row["ratio_note"] == "unstable in 1/2 seeds" and row["test_note"] == ""
    per_seed = s3.stats_frame(analysis, runs, per_seed=True)
    assert list(per_seed["seed"]) == [1, 2] and list(per_seed["ratio"]) == [4.0, 8.0]
    html = s3.stats_table(per_seed, runs)
    assert "<th>seed</th>" in html and "[2, 6]" in html and "1e−05" in html
    undefined = {"runs": {"s": {"tests": [_test(1, -3.0, -9.0, 1.0, 0.5, 0.1, 99.0, status="undefined")]}}}
    row = s3.stats_frame(undefined, runs).iloc[0]
    assert math.isnan(row["ratio"]) and row["ratio_status"] == "undefined"


def test_divergence_and_hierarchy_sentences() -> None:
    runs = [_run("r", "bit_flip", prob=0.5)]
    rows = _rows().assign(status="diverged", delta_ppl=math.inf, n_nonfinite_windows=8)
    notes = t3.divergence_notes(rows, runs)
    assert notes == ["Every set diverged under the exponent-MSB flip: the flip multiplies a weight below 2 in "
                     "magnitude by 2^128 (run `r`, float32; non-finite NLL on 8 of 8 windows per condition)."]
    partly = t3.divergence_notes(_rows(), [_run("r", "sign_flip")])
    assert partly == ["`r` (sign flip): random_k diverged in 1 of 3 seeds; its mean ΔPPL uses the others.",
                      "`r` (sign flip): bottom_k diverged in every seed (3)."]
    summary = pd.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "level": 1.0, "target": list(c3.TARGETS) * 2,
                            "mean": [3.0, 1.0, 0.5, 0.2, 1.0, -0.1], "status": "ok"})
    said = t3.hierarchy_sentences(summary, [_run("a", "zero"), _run("b", "zero")], {"a": 1.0, "b": 1.0})
    assert said[0] == "**The hierarchy super > random_k > bottom_k holds** (mean ΔPPL over seeds) for `a`."
    assert said[1] == "**It does not hold** for `b`: super 0.2 < random_k 1 > bottom_k -0.1."


@pytest.mark.parametrize("values, expected", [
    ((-0.000999, -0.000562, -0.000143), "super -0.000999 < random_k -0.000562 < bottom_k -0.000143"),
    ((3.0, 1.0, 0.5), "super 3 > random_k 1 > bottom_k 0.5"),
    ((0.5, 1.0, 0.2), "super 0.5 < random_k 1 > bottom_k 0.2"),
    ((1.0, 0.2, 0.5), "super 1 > random_k 0.2 < bottom_k 0.5"),
    ((1.0, 1.0, math.nan), "super 1 = random_k 1 vs bottom_k —"),
])
def test_hierarchy_order_text_states_the_sign_each_pair_has(values, expected) -> None:
    means = dict(zip(("bottom_k", "super", "random_k"), (values[2], values[0], values[1])))  # any dict order
    assert t3._order_text(means) == expected


def test_repeat_frame_and_sentence() -> None:
    rows = pd.concat([_rows(), _rows().assign(run="r2")], ignore_index=True)
    frame = t3.repeat_frame(rows, "r", "r2")
    assert len(frame) == 9 and (frame["|difference|"] == 0).all() and "level" not in frame
    assert t3.repeat_sentence(frame, "r", "r2").startswith("`r` and `r2` gave identical ΔPPL in all 9")
    shifted = pd.concat([_rows(), _rows().assign(run="r2", delta_ppl=lambda d: d["delta_ppl"] + 0.5)])
    said = t3.repeat_sentence(t3.repeat_frame(shifted, "r", "r2"), "r", "r2")
    assert said == ("`r` and `r2`: largest |ΔPPL difference| 0.5 over 9 shared conditions, against a seed-to-seed "
                    "sd of ΔPPL(super) of 1.")
