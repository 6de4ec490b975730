"""reports/phase5.qmd rendered offline against a constructed Phase-5 project (tests/report/data/phase5: a prune run
and an adapt run, both graded by the real grade stage on constructed per-window and per-pair NLL; see its
make_fixture.py), and the tables and charts behind it."""

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

from esa.report import charts_phase5 as c5
from esa.report import tables_phase5 as t5
from esa.report.browser import check_site
from esa.report.render import external_refs
from esa.spec import load_spec

FIXTURE = Path(__file__).parent / "data" / "phase5"  # specs/phase5.yaml and results/phase5/
RESULTS = FIXTURE / "results/phase5"
PRUNING = pd.read_parquet(RESULTS / "pruning.parquet")
ADAPTATION = pd.read_parquet(RESULTS / "adaptation.parquet")
CURVES = pd.read_parquet(RESULTS / "adaptation_curves.parquet")
SPEC = load_spec(FIXTURE / "specs/phase5.yaml")
ANALYSIS = json.loads((RESULTS / "analysis.json").read_text())
# make_fixture.ADAPT: (gain, forgetting) each arm was given, in nats per token, before the per-document noise.
ADAPT = {"full": (0.60, 0.30), "frozen": (0.58, 0.12), "fisher": (0.55, 0.10), "top": (0.40, 0.08),
         "random": (0.25, 0.04), "bottom": (0.15, 0.02), "lora": (0.45, 0.06)}


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory, render_page) -> str:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return render_page(project, "phase5")


def cell(frame: pd.DataFrame, **where) -> pd.Series:
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, where
    return rows.iloc[0]


def test_criteria_statuses_sections_and_the_chart(html: str) -> None:
    grades = json.loads((RESULTS / "grades.json").read_text())
    assert {c["status"] for c in grades["criteria"].values()} == {"pass", "fail", "inconclusive"}
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    for cid, criterion in grades["criteria"].items():
        row = next(r for r in rows if f"<code>{cid}</code>" in r)
        assert f'class="badge badge-{criterion["status"]}"' in row
    for section in ("Hypotheses and verdict", "Pre-registration", "Criteria", "Pruning",
                    "Protection and critical-only fine-tuning", "Spec and params used"):
        assert f">{section}</h2>" in html or f">{section}</a></h2>" in html
    # PPL against sparsity; gain against forgetting and the training loss of the adapt run
    assert html.count("<svg") == 3 and html.count('name="esa-charts"') == 3
    assert "Traceback" not in html and "No results yet." not in html
    assert external_refs(html) == []


def test_page_shows_the_named_sparsities_the_record_and_the_protected_arm(html: str) -> None:
    assert "At 30%, 50%, 70% sparsity" in html
    assert "69.01%" in html and "68.75% – 69.53%" in html  # row groups at 70%: floor counts per row
    assert "Sparsity reached, every condition" in html and "−0.63 pp" in html  # 10% per row: 6 of 64
    assert "−11.4% at 70% (PPL 41.2 → 36.5)" in html and "The protected arm at every sparsity" in html
    assert "1 of 2" in html  # random at 70% per matrix diverged on seed 2


def test_chromium_check_of_the_page(html: str, chromium: str, tmp_path: Path) -> None:
    (tmp_path / "phase5.html").write_text(html, encoding="utf-8")
    [check] = check_site(tmp_path, chromium=chromium)
    assert check.ok, check.problems
    assert check.n_charts == check.expected_charts == 3


def test_missing_results_show_a_notice(tmp_path: Path, render_page) -> None:
    shutil.copytree(FIXTURE / "specs", tmp_path / "specs")
    html = render_page(tmp_path, "phase5")
    assert "No results yet." in html and "Traceback" not in html


# --- Pruning tables --------------------------------------------------------------------------------------


def test_named_sparsities_come_from_the_run_criteria() -> None:
    assert t5.named_sparsities(SPEC.criteria, "pr") == [0.3, 0.5, 0.7]
    assert t5.named_sparsities(SPEC.criteria, "other") == [0.5]
    as_dicts = [{"kind": "prune_advantage", "run": "pr", "sparsity": 0.6}, {"kind": "exponent", "run": "pr"}]
    assert t5.named_sparsities(as_dicts, "pr") == [0.6]


def test_runs_are_picked_by_kind() -> None:
    runs = [SimpleNamespace(id="a", kind="prune"), SimpleNamespace(id="b", kind="adapt"),
            SimpleNamespace(id="c", kind="score")]
    spec = SimpleNamespace(runs=runs)
    assert [r.id for r in t5.prune_runs(spec)] == ["a"] and [r.id for r in t5.adapt_runs(spec)] == ["b"]
    assert t5.prune_runs(None) == [] and [r.id for r in t5.prune_runs(SPEC)] == ["pr"]
    assert [r.id for r in t5.adapt_runs(SPEC)] == ["ad"]


def test_arms_in_method_order_each_followed_by_its_protected_arm() -> None:
    assert t5.arm_order(["random", "wanda+protected", "magnitude", "wanda", "zeta", "magnitude+protected"]) == \
        ["magnitude", "magnitude+protected", "wanda", "wanda+protected", "random", "zeta"]


def test_summary_is_the_seed_mean_with_the_ci_envelope_and_the_median_ratio() -> None:
    summary = t5.prune_summary(PRUNING, "pr")
    assert len(summary) == 2 * 4 * 5  # groups × sparsities × arms
    assert list(summary["group"].unique()) == ["row", "matrix"]
    seeds = PRUNING[(PRUNING["arm"] == "wanda") & (PRUNING["group"] == "row") & (PRUNING["sparsity"] == 0.5)]
    magnitude = PRUNING[(PRUNING["arm"] == "magnitude") & (PRUNING["group"] == "row") & (PRUNING["sparsity"] == 0.5)]
    row = cell(summary, arm="wanda", group="row", sparsity=0.5)
    assert row["ppl"] == pytest.approx(seeds["ppl"].mean())
    assert (row["ci_low"], row["ci_high"]) == (seeds["ci_low"].min(), seeds["ci_high"].max())
    ratios = seeds["ppl"].to_numpy() / magnitude.sort_values("seed")["ppl"].to_numpy()
    assert row["vs_magnitude"] == pytest.approx(np.median(ratios))
    # The fixture shifts NLL per token by 1.6 · 0.5² · (0.55 − 1) between the two arms, plus small noise.
    assert row["vs_magnitude"] == pytest.approx(math.exp(1.6 * 0.25 * (0.55 - 1.0)), rel=0.02)
    assert magnitude["ppl"].nunique() == 1  # magnitude masks are the same for every seed


def test_prune_table_holds_the_hand_computed_numbers() -> None:
    table = t5.prune_table(t5.prune_summary(PRUNING, "pr"), [0.5, 0.7])
    assert set(table["target"]) == {"50%", "70%"} and len(table) == 2 * 2 * 5
    wanda = cell(table, arm="wanda", group="row", target="50%")
    seeds = PRUNING[(PRUNING["arm"] == "wanda") & (PRUNING["group"] == "row") & (PRUNING["sparsity"] == 0.5)]
    assert wanda["PPL [95% CI]"] == "23.6 [22.7, 24.6]"
    assert f"{seeds['ppl'].mean():.3g}" == "23.6" and f"{seeds['ci_low'].min():.3g}" == "22.7"
    assert wanda["× magnitude"] == "0.842"
    assert wanda["× dense"] == f"{seeds['ppl'].mean() / seeds['dense_ppl'].mean():.3g}"
    # Row groups at 70%: each 64-wide row keeps 64 − ⌊0.7·64⌋ = 20, each 128-wide row 128 − 89 = 39:
    # (2·64·44 + 128·44 + 64·89) / 24576 = 69.01%; matrices from 44/64 = 68.75% to 89/128 = 69.53%.
    row70 = cell(table, arm="magnitude", group="row", target="70%")
    assert row70["achieved"] == "69.01%" and row70["matrices (least – most)"] == "68.75% – 69.53%"
    assert row70["× magnitude"] == "1" and row70["diverged seeds"] == "—"


def test_a_diverged_seed_is_counted_and_left_out_of_the_mean() -> None:
    summary = t5.prune_summary(PRUNING, "pr")
    row = cell(summary, arm="random", group="matrix", sparsity=0.7)
    finite = PRUNING[(PRUNING["arm"] == "random") & (PRUNING["group"] == "matrix") & (PRUNING["sparsity"] == 0.7)
                     & (PRUNING["status"] == "ok")]
    assert (row["seeds"], row["diverged"]) == (2, 1) and len(finite) == 1
    assert row["ppl"] == pytest.approx(finite["ppl"].iloc[0])
    shown = cell(t5.prune_table(summary, [0.7]), arm="random", group="matrix")
    assert shown["diverged seeds"] == "1 of 2"
    every_seed = PRUNING.assign(ppl=np.where(PRUNING["arm"] == "random", math.inf, PRUNING["ppl"]))
    gone = t5.prune_summary(every_seed, "pr")
    assert math.isinf(cell(gone, arm="random", group="row", sparsity=0.5)["ppl"])
    assert cell(t5.prune_table(gone, [0.5]), arm="random", group="row")["PPL [95% CI]"] == "∞"
    assert "random" not in set(c5.curve_frame(gone)["arm"].dropna())  # a log axis cannot place ∞


def test_sparsity_record_and_its_summary_sentence() -> None:
    summary = t5.prune_summary(PRUNING, "pr")
    record = t5.sparsity_record(summary)
    assert len(record) == len(summary)
    first = cell(record, arm="magnitude", group="row", target="10%")  # ⌊0.1·64⌋ = 6 of 64 per row
    assert (first["achieved"], first["achieved − target"]) == ("9.38%", "−0.63 pp")
    assert cell(record, arm="wanda", group="matrix", target="70%")["achieved − target"] == "0.00 pp"
    text = t5.sparsity_gap_text(summary)
    assert "within 0.99 percentage points" in text and "68.75% – 69.53%" in text


def test_protected_arm_change_is_the_median_seed_ratio() -> None:
    frame = t5.protection_frame(PRUNING, "pr")
    assert set(frame["arm"]) == {"magnitude+protected"} and len(frame) == 8
    row = cell(frame, group="row", sparsity=0.7)
    kept = PRUNING[(PRUNING["arm"] == "magnitude+protected") & (PRUNING["group"] == "row")
                   & (PRUNING["sparsity"] == 0.7)].sort_values("seed")["ppl"].to_numpy()
    alone = PRUNING[(PRUNING["arm"] == "magnitude") & (PRUNING["group"] == "row")
                    & (PRUNING["sparsity"] == 0.7)].sort_values("seed")["ppl"].to_numpy()
    assert row["change"] == pytest.approx(np.median(kept / alone) - 1)
    assert row["change"] == pytest.approx(math.exp(1.6 * 0.49 * (0.85 - 1.0)) - 1, abs=0.01)
    text = t5.protection_text(frame, [0.7])
    assert text.startswith("Keeping the critical set while pruning by **magnitude**")
    assert "in row groups −11.4% at 70% (PPL 41.2 → 36.5); in matrix groups −13.9% at 70%" in text
    assert t5.protection_text(frame[frame["arm"] == "none"], [0.7]) == ""
    shown = cell(t5.protection_table(frame), group="matrix", target="50%")
    assert (shown["PPL (method alone)"], shown["PPL (critical set kept)"]) == ("31", "28.7")
    assert shown["change"] == "−7.52%"


def test_prune_chart_marks_and_encodings() -> None:
    frame = c5.curve_frame(t5.prune_summary(PRUNING, "pr"))
    assert set(frame["layer"]) == {"curve", "dense"}
    dense = frame[frame["layer"] == "dense"].set_index("group")["dense_ppl"]
    assert dense["row"] == pytest.approx(PRUNING["dense_ppl"].iloc[0])
    spec = c5.prune_chart(frame).to_dict()
    assert spec["facet"]["column"]["field"] == "group"
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers] == \
        ["line", "area", "point", "rule"]
    line, area, _, rule = layers
    assert line["encoding"]["y"]["scale"]["type"] == "log" and line["encoding"]["x"]["field"] == "sparsity"
    assert line["encoding"]["color"]["field"] == "arm" and line["encoding"]["strokeDash"]["field"] == "protected"
    assert (area["encoding"]["y"]["field"], area["encoding"]["y2"]["field"]) == ("ci_low", "ci_high")
    assert rule["encoding"]["y"]["field"] == "dense_ppl" and rule["mark"]["strokeDash"] == [4, 4]
    assert line["encoding"]["color"]["sort"][:2] == ["magnitude", "magnitude+protected"]


# --- Adaptation: the page section, tables and charts (the fixture's adapt run, graded by the grade stage) ------


def adapt_section(html: str) -> str:
    start = html.index('<h2 id="protection-and-critical-only-fine-tuning"')
    return html[start:html.index("<h2", start + 1)]


def table_row(section: str, arm: str) -> list[str]:
    row = next(r for r in re.findall(r"<tr>.*?</tr>", section, flags=re.S) if f"<td>{arm}</td>" in r)
    return re.findall(r"<td>(.*?)</td>", row, flags=re.S)


def test_page_shows_the_adaptation_section_with_the_hand_computed_table(html: str) -> None:
    section = adapt_section(html)
    assert html.index(">Pruning</h2>") < html.index(">Protection and critical-only fine-tuning</h2>") \
        < html.index(">Spec and params used</h2>")
    assert "<strong>ad</strong>: Seven arms trained for 50 steps on the instruction pairs." in section
    assert ("Forgetting on the shared baseline’s 48 windows from 12 documents; gain on 30 held-out pairs from 10 "
            "documents.") in section  # 12 documents × 4 windows; 10 documents × 3 pairs
    assert "(documents resampled, 2000 draws)" in section
    assert section.count("<svg") == 2 and "Training loss per step, mean over seeds." in section
    assert "No results yet." not in section
    rows = re.findall(r"<tr>.*?</tr>", section, flags=re.S)
    assert [re.search(r"<td>(.*?)</td>", r).group(1) for r in rows] == list(ADAPT)  # one row per arm, in order
    for arm in ADAPT:  # the seed mean, the envelope of the seeds' CIs, the seed-mean PPLs, with three digits
        seeds = ADAPTATION[ADAPTATION["arm"] == arm]
        g, f = seeds["gain"].mean(), seeds["forgetting"].mean()
        shown = table_row(section, arm)
        assert shown[2:5] == ["2", f"{int(seeds['n_trainable'].iloc[0]):,}", "50"]
        assert shown[5] == f"{g:.3g} [{seeds['gain_ci_low'].min():.3g}, {seeds['gain_ci_high'].max():.3g}]"
        assert shown[6] == \
            f"{f:.3g} [{seeds['forgetting_ci_low'].min():.3g}, {seeds['forgetting_ci_high'].max():.3g}]"
        assert shown[7] == f"{g / seeds['n_trainable'].iloc[0] * 1e6:.3g}"
        assert shown[8] == f"{seeds['ppl_before'].mean():.3g} → {seeds['ppl_after'].mean():.3g}"
        assert shown[9] == f"{seeds['new_ppl_before'].mean():.3g} → {seeds['new_ppl_after'].mean():.3g}"
    assert table_row(section, "full")[5:] == ["0.599 [0.581, 0.612]", "0.297 [0.288, 0.309]", "5.99",
                                              "18.8 → 25.3", "7.89 → 4.33", "122"]  # wall time (121 + 122) / 2
    assert table_row(section, "top")[3] == "1,000" and table_row(section, "top")[7] == "402"


def test_adaptation_files_are_the_grade_stage_measures_of_the_constructed_shifts() -> None:
    assert len(ADAPTATION) == 2 * 7 and set(ADAPTATION["seed"]) == {1, 2}
    for row in ADAPTATION.itertuples():
        gain, forgetting = ADAPT[row.arm]
        assert row.gain == pytest.approx(gain, abs=0.03) and row.forgetting == pytest.approx(forgetting, abs=0.03)
        assert row.gain_ci_low < row.gain < row.gain_ci_high
        assert row.forgetting_ci_low < row.forgetting < row.forgetting_ci_high
        # token-weighted mean NLLs: PPL after = PPL before · exp(±measure); one shared baseline with the prune run
        assert row.ppl_after == pytest.approx(row.ppl_before * math.exp(row.forgetting), rel=1e-9)
        assert row.new_ppl_after == pytest.approx(row.new_ppl_before * math.exp(-row.gain), rel=1e-9)
        assert row.ppl_before == pytest.approx(PRUNING["dense_ppl"].iloc[0], rel=1e-9)
        assert row.gain_per_param == pytest.approx(row.gain / row.n_trainable)
        assert (row.steps, row.wall_time_s) == (50, {"full": 120.0, "frozen": 118.0, "fisher": 131.0, "top": 64.0,
                                                     "random": 63.0, "bottom": 63.0, "lora": 71.0}[row.arm] + row.seed)
        assert row.final_train_loss == pytest.approx(3.0 - gain * (1 - math.exp(-50 / 15)))
    result = ANALYSIS["runs"]["ad"]
    assert (result["n_docs"], result["n_windows"], result["n_pair_docs"], result["n_pairs"]) == (12, 48, 10, 30)


def test_adapt_criteria_are_the_per_seed_arm_differences() -> None:
    grades = json.loads((RESULTS / "grades.json").read_text())["criteria"]
    expected = {"frozen-forgets-less": "pass", "fisher-keeps-gain": "fail", "top-learns-more": "pass"}
    assert {cid: grades[cid]["status"] for cid in expected} == expected
    for criterion in (c for c in SPEC.criteria if c.kind == "adapt_difference"):
        entries = ANALYSIS["runs"]["ad"]["adapt_differences"][criterion.id]
        for entry in entries:
            seed = ADAPTATION[ADAPTATION["seed"] == entry["seed"]].set_index("arm")[criterion.measure]
            assert (entry["a_value"], entry["b_value"]) == (seed[criterion.a], seed[criterion.b])
            assert entry["value"] == pytest.approx(seed[criterion.a] - seed[criterion.b], rel=1e-12)
            assert entry["ci_low"] < entry["value"] < entry["ci_high"]
        grade = grades[criterion.id]
        assert grade["value"] == pytest.approx(np.median([e["value"] for e in entries]))
        assert grade["ci"] == [min(e["ci_low"] for e in entries), max(e["ci_high"] for e in entries)]
    # fisher gives up 0.05 nats of gain against full: more than the 0.02 its criterion allows, on the whole CI
    assert grades["fisher-keeps-gain"]["ci"][1] < -0.02


def test_adapt_summary_means_envelopes_and_gain_per_million() -> None:
    summary = t5.adapt_summary(ADAPTATION, "ad")
    assert list(summary["arm"]) == ["full", "frozen", "fisher", "top", "random", "bottom", "lora"]
    top = cell(summary, arm="top")
    seeds = ADAPTATION[ADAPTATION["arm"] == "top"]
    assert top["gain"] == pytest.approx(seeds["gain"].mean())
    assert (top["gain_ci_low"], top["gain_ci_high"]) == (seeds["gain_ci_low"].min(), seeds["gain_ci_high"].max())
    assert top["forgetting_ci_high"] == seeds["forgetting_ci_high"].max()
    assert top["gain_per_mparam"] == pytest.approx(seeds["gain"].mean() / 1000 * 1e6)  # 1,000 trainable weights
    assert t5.adapt_summary(ADAPTATION, "other").empty and t5.adapt_summary(None, "ad").empty


def test_adapt_table_holds_the_numbers() -> None:
    table = t5.adapt_table(t5.adapt_summary(ADAPTATION, "ad"))
    full = cell(table, arm="full")
    seeds = ADAPTATION[ADAPTATION["arm"] == "full"]
    assert full["trains"] == "all weights (full fine-tuning)" and full["trainable"] == 100_000
    assert full["gain [95% CI]"] == (f"{seeds['gain'].mean():.3g} [{seeds['gain_ci_low'].min():.3g}, "
                                     f"{seeds['gain_ci_high'].max():.3g}]")
    assert full["gain [95% CI]"] == "0.599 [0.581, 0.612]"
    assert full["forgetting [95% CI]"] == "0.297 [0.288, 0.309]"
    assert full["gain / M params"] == "5.99" and full["wall time (s)"] == "122"  # (121 + 122) / 2 = 121.5
    assert full["PPL original"] == "18.8 → 25.3" and full["PPL new domain"] == "7.89 → 4.33"


def test_adapt_chart_has_points_labels_and_error_bars_on_both_axes() -> None:
    spec = c5.adapt_chart(t5.adapt_summary(ADAPTATION, "ad")).to_dict()
    layers = spec["layer"]
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]
    assert marks == ["rule", "rule", "point", "text"]
    xbar, ybar, point, text = (layer.get("encoding", {}) for layer in layers)
    assert (xbar["x"]["field"], xbar["x2"]["field"], xbar["y"]["field"]) == \
        ("forgetting_ci_low", "forgetting_ci_high", "gain")
    assert (ybar["y"]["field"], ybar["y2"]["field"], ybar["x"]["field"]) == \
        ("gain_ci_low", "gain_ci_high", "forgetting")
    assert (point["x"]["field"], point["y"]["field"]) == ("forgetting", "gain") and text["text"]["field"] == "arm"
    assert all(layer["encoding"]["color"]["field"] == "arm" for layer in layers)
    assert len(next(iter(spec["datasets"].values()))) == 7


def test_loss_curves_are_seed_means_per_arm_and_step() -> None:
    frame = t5.loss_frame(CURVES, "ad")
    assert list(frame["arm"].unique())[:3] == ["full", "frozen", "fisher"]
    row = cell(frame, arm="lora", step=50)
    assert row["loss"] == pytest.approx(CURVES[(CURVES["arm"] == "lora") & (CURVES["step"] == 50)]["loss"].mean())
    assert row["seeds"] == 2 and row["loss"] == pytest.approx(3.0 - 0.45 * (1 - math.exp(-50 / 15)))
    assert sorted(frame["step"].unique()) == [10, 20, 30, 40, 50] and len(frame) == 7 * 5
    spec = c5.loss_chart(frame).to_dict()
    assert spec["mark"]["type"] == "line"
    assert [spec["encoding"][c]["field"] for c in ("x", "y", "color")] == ["step", "loss", "arm"]
    assert t5.loss_frame(None, "ad").empty
