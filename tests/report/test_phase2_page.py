"""reports/phase2.qmd rendered offline against a tiny real Phase-2 project, and the chart data preparation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from esa.analysis.score_tables import HIST_EDGES_LOG10
from esa.report import charts, charts_phase2 as c2, tables_phase2 as t2
from esa.report.render import external_refs

FIXTURE = Path(__file__).parent / "data" / "phase2"  # a project root: specs/ and results/phase2/



@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory, render_page) -> str:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return render_page(project, "phase2")


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr>.*?</tr>", html, flags=re.S)


def test_criteria_and_statuses(html: str) -> None:
    grades = json.loads((FIXTURE / "results/phase2/grades.json").read_text())
    rows = _rows(html)
    for cid, criterion in grades["criteria"].items():
        row = next(r for r in rows if f"<code>{cid}</code>" in r)
        assert f'class="badge badge-{criterion["status"]}"' in row
    assert "Phase 2 — sensitivity discovery" in html


def test_sections_and_charts(html: str) -> None:
    assert html.count("<svg") >= 4
    for section in ("What was scored", "Score distributions", "Stability vs k", "Metric agreement", "Heavy tails",
                    "Hotspots", "Super weights", "How this was measured"):
        assert section in html
    assert "Embeddings and lm_head were excluded from every run." in html
    assert "The gradient metrics disagree." in html  # fixture: Jaccard 0.201 < 0.6
    assert "none found" in html and "1.78" in html  # largest input spike ratio in the fixture
    assert "Wanda" in html  # estimators come from summary.json
    assert "Traceback" not in html and "No results yet." not in html


def test_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert external_refs(html) == []


def test_missing_results_shows_notice(tmp_path: Path, render_page) -> None:
    (tmp_path / "specs").mkdir()
    shutil.copy(FIXTURE / "specs" / "phase2.yaml", tmp_path / "specs" / "phase2.yaml")
    html = render_page(tmp_path, "phase2")
    assert "No results yet." in html and "results/phase2/grades.json" in html
    assert "Traceback" not in html


# --- chart data preparation ---------------------------------------------------------------------------------


def _hist(**bins: int) -> list[int]:
    counts = [0] * (len(HIST_EDGES_LOG10) - 1)
    for name, value in bins.items():
        counts[int(name[1:])] = value
    return counts


def test_histogram_frame_sums_matrices_and_averages_seeds() -> None:
    stats = pd.DataFrame({
        "metric": ["a", "a", "a", "b"],
        "seed": [1, 1, 2, 1],
        "hist_counts": [_hist(b3=2, b4=1), _hist(b3=4), _hist(b3=6, b5=8), _hist(b0=5)],
    })
    out = c2.histogram_frame(stats)
    a = out[out["metric"] == "a"].set_index("log10_lo")["count"]
    # bin 3: seed 1 sums 2 + 4 = 6, seed 2 has 6 → mean 6; bin 4: (1 + 0) / 2; bin 5: (0 + 8) / 2.
    assert a.to_dict() == {HIST_EDGES_LOG10[3]: 6.0, HIST_EDGES_LOG10[4]: 0.5, HIST_EDGES_LOG10[5]: 4.0}
    b = out[out["metric"] == "b"].iloc[0]
    assert (b["log10_lo"], b["log10_hi"], b["count"]) == (-12.0, -11.75, 5.0)
    assert c2.histogram_frame(pd.DataFrame()).empty


def test_hotspot_frame_counts_and_enrichment() -> None:
    stats = pd.DataFrame({
        "metric": "m", "seed": [1, 1, 1, 2, 2, 2],
        "tensor": ["q0", "u0", "emb"] * 2, "layer": [0, 0, None] * 2,
        "component": ["attn_q", "mlp_up", "embed"] * 2,
        "count": [100, 300, 600] * 2, "n_nonfinite": 0, "mean": 1.0,
    })
    topk = pd.DataFrame({
        "metric": "m", "mode": "global", "seed": [1] * 4 + [2] * 4,
        "layer": [0, 0, 0, None, 0, 0, 0, 0], "component": ["attn_q"] * 3 + ["embed"] + ["mlp_up"] * 4,
    })
    out = c2.hotspot_frame(topk, stats, "m").set_index(["layer", "component"])
    # Seed 1: attn_q holds 3 of 4 selected (75%) with 10% of the parameters → 7.5; seed 2: none → 0.
    assert out.loc[("0", "attn_q"), "n_selected"] == 1.5
    assert out.loc[("0", "attn_q"), "enrichment"] == pytest.approx((7.5 + 0) / 2)
    # mlp_up: seed 1 none, seed 2 all 4 with 30% of the parameters → (0 + 1 / 0.3) / 2.
    assert out.loc[("0", "mlp_up"), "enrichment"] == pytest.approx(1 / 0.3 / 2)
    assert out.loc[(c2.NO_LAYER, "embed"), "n_selected"] == 0.5
    assert out.loc[(c2.NO_LAYER, "embed"), "share_params"] == pytest.approx(0.6)
    assert c2.layer_order(["10", c2.NO_LAYER, "2"]) == ["2", "10", c2.NO_LAYER]
    assert c2.hotspot_frame(topk, stats, "m", mode="per_layer")["n_selected"].sum() == 0


def test_stability_frame_drops_nan_and_labels_shared_metrics() -> None:
    curve = pd.DataFrame({
        "run": ["r1", "r1", "r2", "r1"], "metric": ["g", "g", "g", "h"], "mode": "per_layer",
        "k": [10, 20, 10, 10], "mean": [0.5, np.nan, 0.7, 0.2], "ci_low": 0.1, "ci_high": 0.9,
        "n_seeds": 3, "n_pairs": 3,
    })
    out = c2.stability_frame(curve)
    assert len(out) == 3
    assert sorted(out["series"]) == ["g (r1)", "g (r2)", "h"]
    chart = c2.stability_chart(out, threshold=0.4).to_dict()
    assert chart["facet"]["column"]["field"] == "mode"


def _encoding(spec: dict, channel: str) -> list[dict]:
    return [layer["encoding"][channel] for layer in spec["spec"]["layer"] if channel in layer.get("encoding", {})]


@pytest.mark.parametrize("n_series", [3, 12, 40])
def test_stability_chart_gives_every_series_its_own_look_and_spaced_k_labels(n_series) -> None:
    curve = pd.DataFrame([{"run": "r", "metric": f"metric_{i:02d}", "mode": "global", "k": k, "mean": 0.5,
                           "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 3, "n_pairs": 3}
                          for i in range(n_series) for k in (10, 100, 1000, 10000, 100000)])
    frame = c2.stability_frame(curve)
    spec = c2.stability_chart(frame).to_dict()
    line = next(layer["encoding"] for layer in spec["spec"]["layer"] if "strokeDash" in layer.get("encoding", {}))
    color, dash = line["color"]["scale"], line["strokeDash"]["scale"]
    assert color["domain"] == dash["domain"] == sorted(frame["series"].unique())
    looks = {(c, tuple(d)) for c, d in zip(color["range"], dash["range"])}
    assert len(looks) == n_series == len(color["range"])
    axis = _encoding(spec, "x")[0]["axis"]
    assert axis["labelOverlap"] and axis["format"] == "~s"


def test_overlap_frame_is_symmetric_without_diagonal() -> None:
    overlap = {
        "a|b/per_layer": {"jaccard": 0.25, "k": 10},
        "a|c/per_layer": {"jaccard": "nan", "k": 10},  # undefined: left out
        "b|c/global": {"jaccard": 0.5, "k": 10},
    }
    out = c2.overlap_frame(overlap)
    assert set(map(tuple, out[["mode", "metric_a", "metric_b", "value"]].values.tolist())) == {
        ("per_layer", "a", "b", 0.25), ("per_layer", "b", "a", 0.25),
        ("global", "b", "c", 0.5), ("global", "c", "b", 0.5)}
    assert c2.overlap_frame(overlap, metrics=["a", "b"])["mode"].unique().tolist() == ["per_layer"]


def test_charts_build_from_prepared_frames() -> None:
    charts.setup()
    hist = c2.histogram_frame(pd.DataFrame({"metric": ["a"], "hist_counts": [_hist(b7=3)]}))
    assert c2.distribution_chart(hist).to_dict()["facet"]["row"]["field"] == "metric"
    frame = c2.overlap_frame({"a|b/global": {"jaccard": 0.3, "k": 5}})
    assert c2.overlap_chart(frame, ["a", "b"], "t").to_dict()["facet"]["column"]["field"] == "mode"


# --- plain-language findings ------------------------------------------------------------------------------


def _run(id: str, metrics: list[str], emb: bool = False, head: bool = False) -> SimpleNamespace:
    return SimpleNamespace(id=id, metrics=metrics, include_embeddings=emb, include_lm_head=head)


def test_embeddings_sentence() -> None:
    assert t2.embeddings_sentence([_run("a", ["m"]), _run("b", ["m"])]) == \
        "Embeddings and lm_head were excluded from every run."
    said = t2.embeddings_sentence([_run("a", ["m"]), _run("b", ["m"], emb=True, head=True)])
    assert said == "Embeddings and lm_head were included only in `b` (excluded elsewhere)."


def test_superweight_sentence() -> None:
    report = {"threshold": 50.0, "candidates": [], "layers": [
        {"layer": 0, "input_ratio": 3.5, "output_ratio": 1.2}, {"layer": 1, "input_ratio": 2.0, "output_ratio": 7.0}]}
    said = t2.superweight_sentence([_run("sw", ["superweight"])], [("sw", 1, report)])
    assert "none found" in said and "3.5 (input) and 7 (output)" in said and "threshold of 50" in said
    assert "not looked for" in t2.superweight_sentence([_run("g", ["grad_x_weight"])], [])
