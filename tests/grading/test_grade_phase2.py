"""Phase-2 criteria graded on constructed scoring artifacts: every kind passes, fails and is inconclusive on data
built for the case, through the real analyses (esa.grading.score_analysis) and the registered evaluators."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, optimize, special

from esa.engine.scoring.score_stats import target_score_stats
from esa.engine.scoring.select import Selector
from esa.engine.models.targets import Target
from esa.grading import score_criteria  # noqa: F401  (registers the evaluators)
from esa.grading.score_analysis import analyze_score_runs
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.spec import load_spec

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matrices: thread start-up costs more than the work, many times over on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


COMPONENTS = ["attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down"]
SHAPE = (64, 64)
K = 42  # 3 per matrix when spread evenly over the 14 matrices


def spec_text(seeds: list[int], criteria: str, k_grid: str = "[21, 42]") -> str:
    return textwrap.dedent(f"""\
        phase: 2
        title: t
        hypotheses: [{{id: H1, statement: s}}]
        defaults: {{model: ref-tiny, data: stdlib-tiny, seeds: {seeds}}}
        runs:
          - {{id: r, kind: score, metrics: [grad_x_weight, magnitude], topk: {K}, k_grid: {k_grid}}}
        criteria:
        """) + textwrap.indent(textwrap.dedent(criteria), "  ")


def targets(n_layers: int = 2, n_matrices: int | None = None) -> list[Target]:
    gen = torch.Generator().manual_seed(1234)  # the "model": the same weights for every seed
    found = [Target(f"model.layers.{layer}.{comp}.weight", torch.nn.Parameter(torch.randn(SHAPE, generator=gen)),
                    layer, comp, None, SHAPE) for layer in range(n_layers) for comp in COMPONENTS]
    return found[:n_matrices]


def write_run(root: Path, seeds: list[int], data_factor, n_layers: int = 2, n_matrices: int | None = None) -> None:
    """Per seed: scores grad_x_weight = |w| · data_factor(seed, i, target) and magnitude = |w|, selected and
    described by the real selector and statistics, written as the scoring stage writes them."""
    tgts = targets(n_layers, n_matrices)
    for seed in seeds:
        out = root / f"results/phase2/r/seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        stats, tops = [], []
        for metric in ("grad_x_weight", "magnitude"):
            selectors = {mode: Selector(K, mode) for mode in ("per_layer", "global")}
            for i, t in enumerate(tgts):
                w = t.weight().abs()
                score = w * data_factor(seed, i, t) if metric == "grad_x_weight" else w.clone()
                for sel in selectors.values():
                    sel.add(t, score)
                stats.append({"metric": metric, **target_score_stats(t, score, metric=metric, null_seed=seed)})
            for mode, sel in selectors.items():
                tops.append(sel.result().assign(metric=metric, mode=mode))
        pd.DataFrame(stats).to_parquet(out / "tensor_stats.parquet", index=False)
        pd.concat(tops, ignore_index=True).to_parquet(out / "topk.parquet", index=False)


def grade(root: Path, seeds: list[int], criteria: str, data_factor, n_layers: int = 2,
          n_matrices: int | None = None):
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "specs/phase2.yaml").write_text(spec_text(seeds, criteria))
    spec = load_spec(root / "specs/phase2.yaml")
    write_run(root, seeds, data_factor, n_layers, n_matrices)
    ctx = GradeContext(spec, root, analyze_score_runs(spec, root))
    return {c.id: EVALUATORS[c.kind](c, ctx) for c in spec.criteria}


def gaussian(seed: int, i: int, t: Target) -> torch.Tensor:
    """An unrelated data factor |g|, g ~ N(0, 1), new for every seed and matrix."""
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(1000 * seed + i)).abs()


def constant(seed: int, i: int, t: Target) -> torch.Tensor:
    return torch.ones(SHAPE)


def aligned(seed: int, i: int, t: Target) -> torch.Tensor:
    """Planted structure: the data factor is 100× larger exactly where |w| is in its top 1%."""
    w = t.weight().abs()
    return gaussian(seed, i, t) * torch.where(w >= torch.quantile(w.flatten(), 0.99), 100.0, 1.0)


# --- tail_ratio -------------------------------------------------------------------------------------------


def test_tail_of_unrelated_factors_is_chance_level(tmp_path):
    crit = """\
        - {id: tail, hypothesis: H1, kind: tail_ratio, run: r, metric: grad_x_weight}
        - {id: mag, hypothesis: H1, kind: tail_ratio, run: r, metric: magnitude}
        """
    g = grade(tmp_path, [1, 2, 3], crit, gaussian)
    # |w|·|g|: top-1%/median ≈ 12 observed, but the shuffled null gives the same: excess ≈ 1 < 2
    assert g["tail"].status == "fail" and abs(g["tail"].value - 1) < 0.1 and g["tail"].ci[1] < 2
    assert "null" in g["tail"].reason
    assert g["mag"].status == "inconclusive" and "no null defined for magnitude" in g["mag"].reason


def test_tail_with_planted_alignment_passes(tmp_path):
    crit = "- {id: tail, hypothesis: H1, kind: tail_ratio, run: r, metric: grad_x_weight}\n"
    g = grade(tmp_path, [1, 2], crit, aligned)["tail"]
    assert g.status == "pass" and g.ci[0] > 2, g.reason


def test_tail_needs_enough_matrices(tmp_path):
    crit = "- {id: tail, hypothesis: H1, kind: tail_ratio, run: r, metric: grad_x_weight}\n"
    assert grade(tmp_path / "a", [1, 2], crit, aligned, n_matrices=5)["tail"].status == "pass"
    g = grade(tmp_path / "b", [1, 2], crit, aligned, n_matrices=4)["tail"]  # the same tail, one matrix fewer
    assert g.status == "inconclusive" and "at least 5 matrices" in g.reason and g.value > 2


def test_tail_without_null_columns_is_inconclusive(tmp_path):
    crit = "- {id: tail, hypothesis: H1, kind: tail_ratio, run: r, metric: grad_x_weight}\n"
    grade(tmp_path, [1, 2], crit, aligned)
    for old in (tmp_path / "results/phase2/r").iterdir():  # artifacts scored before the null existed
        stats = pd.read_parquet(old / "tensor_stats.parquet")
        stats.drop(columns=["null_top1pct_over_median"]).to_parquet(old / "tensor_stats.parquet")
    spec = load_spec(tmp_path / "specs/phase2.yaml")
    g = EVALUATORS["tail_ratio"](spec.criteria[0], GradeContext(spec, tmp_path, analyze_score_runs(spec, tmp_path)))
    assert g.status == "inconclusive" and "no null statistic" in g.reason


def _abs_product_stats() -> tuple[float, float, float]:
    """|X·Y| for independent N(0, 1): density 2·K0(z)/π on z > 0. Returns (median, 99th percentile,
    mean(top 1%) / median), from the density by quadrature."""
    pdf = lambda z: 2 * special.k0(z) / math.pi  # noqa: E731
    cdf = lambda x: integrate.quad(pdf, 0, x, limit=200)[0]  # noqa: E731
    median = optimize.brentq(lambda x: cdf(x) - 0.5, 1e-6, 10)
    q99 = optimize.brentq(lambda x: cdf(x) - 0.99, 1e-3, 50)
    top = integrate.quad(lambda z: z * pdf(z), q99, np.inf, limit=200)[0] / 0.01
    return median, q99, top / median


def test_analytic_gaussian_product_tail_and_its_null():
    from esa.analysis.tails import tail_excess
    from esa.engine.scoring.score_stats import tensor_score_stats

    _, _, analytic = _abs_product_stats()
    assert analytic == pytest.approx(12.4, abs=0.1)  # the old criterion (> 10) passed on pure noise
    rows = {}
    for seed in (1, 2):
        frame = []
        for i, t in enumerate(targets(1)):
            big = Target(t.name, torch.nn.Parameter(torch.randn(300, 300, generator=torch.Generator().manual_seed(i))),
                         t.layer, t.component, None, (300, 300))
            g = torch.randn(300, 300, generator=torch.Generator().manual_seed(100 * seed + i))
            score = (big.weight() * g).abs()
            row = target_score_stats(big, score, metric="grad_x_weight", null_seed=seed)
            assert row["top1pct_over_median"] == pytest.approx(analytic, rel=0.08)
            assert row["null_top1pct_over_median"] == pytest.approx(analytic, rel=0.08)
            assert tensor_score_stats(score)["top1pct_over_median"] == row["top1pct_over_median"]
            frame.append(row)
        rows[seed] = pd.DataFrame(frame)
    excess = tail_excess(rows)
    assert excess.value == pytest.approx(1.0, abs=0.05) and excess.ci_low < 1.05 and excess.ci_high > 0.95
    assert excess.median_observed == pytest.approx(analytic, rel=0.05)


# --- hotspot ----------------------------------------------------------------------------------------------


def concentrated(seed: int, i: int, t: Target) -> torch.Tensor:
    """Every global top-k weight in mlp_down (2 of the 14 matrices, 1/7 of the parameters)."""
    return gaussian(seed, i, t) * (1000.0 if t.component == "mlp_down" else 1.0)


def even(seed: int, i: int, t: Target) -> torch.Tensor:
    """3 planted top weights per matrix: every component holds exactly its parameter share of the top 42."""
    d = gaussian(seed, i, t).clamp(max=1.0)
    flat = d.view(-1)
    for j in range(3):
        flat[seed * 7 + j * 101] = 1e6
    return d


def test_hotspot_passes_fails_by_enrichment_and_its_null(tmp_path):
    crit = "- {id: hot, hypothesis: H1, kind: hotspot, run: r, metric: grad_x_weight}\n"
    g = grade(tmp_path / "a", [1, 2, 3], crit, concentrated)["hot"]
    assert g.status == "pass" and g.value == pytest.approx(7.0) and g.ci == [7.0, 7.0], g.reason
    assert "mlp_down" in g.reason and "null 95th percentile" in g.reason
    g = grade(tmp_path / "b", [1, 2, 3], crit, even)["hot"]
    assert g.status == "fail" and g.value == pytest.approx(1.0), g.reason


def test_hotspot_is_inconclusive_with_one_seed_or_disagreeing_seeds(tmp_path):
    crit = "- {id: hot, hypothesis: H1, kind: hotspot, run: r, metric: grad_x_weight}\n"
    g = grade(tmp_path / "a", [1], crit, concentrated)["hot"]
    assert g.status == "inconclusive" and "needs ≥ 2 seeds" in g.reason and g.value == pytest.approx(7.0)
    mixed = lambda seed, i, t: concentrated(seed, i, t) if seed == 1 else even(seed, i, t)  # noqa: E731
    g = grade(tmp_path / "b", [1, 2, 3], crit, mixed)["hot"]
    # mlp_down: 7, 1, 1 → mean 3; resampling seeds gives anything from 1 to 7: straddles 2
    assert g.status == "inconclusive" and g.value == pytest.approx(3.0) and "straddles" in g.reason


def test_hotspot_above_threshold_but_within_chance_fails(tmp_path):
    """A threshold random draws reach as easily is not evidence: the null's 95th percentile takes over."""
    (tmp_path / "phase2.yaml").write_text(
        spec_text([1, 2], "- {id: hot, hypothesis: H1, kind: hotspot, run: r, metric: grad_x_weight}\n"))
    spec = load_spec(tmp_path / "phase2.yaml")
    enrichment = {"seeds": [1, 2], "value": 3.0, "ci_low": 2.5, "ci_high": 3.5, "null_p95": 4.0,
                  "top_cell": "mlp_down", "note": ""}
    analysis = {"runs": {"r": {"hotspots": {"grad_x_weight/component": {"enrichment": enrichment}}}}}
    g = EVALUATORS["hotspot"](spec.criteria[0], GradeContext(spec, Path("."), analysis))
    assert g.status == "fail" and "threshold 2" in g.reason and "null 95th percentile 4" in g.reason
    enrichment.update(null_p95=1.5)
    assert EVALUATORS["hotspot"](spec.criteria[0], GradeContext(spec, Path("."), analysis)).status == "pass"


# --- jaccard_stability and metric_overlap -------------------------------------------------------------------


STAB = "- {id: stab, hypothesis: H1, kind: jaccard_stability, run: r, metric: grad_x_weight}\n"
OVER = ("- {id: ov, hypothesis: H1, kind: metric_overlap, a: {run: r, metric: grad_x_weight}, "
        "b: {run: r, metric: magnitude}}\n")


def test_stability_and_overlap_pass_when_seeds_and_metrics_agree(tmp_path):
    g = grade(tmp_path, [1, 2, 3], STAB + OVER, constant)  # grad_x_weight = |w|: same sets everywhere
    assert g["stab"].status == "pass" and g["stab"].ci == [1.0, 1.0]
    assert g["ov"].status == "pass" and g["ov"].value == 1.0 and g["ov"].ci == [1.0, 1.0]


def test_stability_and_overlap_fail_on_unrelated_sets(tmp_path):
    noise = lambda seed, i, t: gaussian(seed, i, t) ** 8  # noqa: E731  (the data factor dominates |w|)
    g = grade(tmp_path, [1, 2, 3], STAB + OVER, noise)
    assert g["stab"].status == "fail" and g["stab"].ci[1] < 0.4, g["stab"].reason
    assert g["ov"].status == "fail" and g["ov"].ci[1] < 0.6, g["ov"].reason


def test_stability_and_overlap_inconclusive(tmp_path):
    # Seeds 1 and 2 agree, seed 3 does not: pairs 1, ~0, ~0; resampling seeds spans both → straddles 0.4.
    half = lambda seed, i, t: constant(seed, i, t) if seed < 3 else gaussian(seed, i, t) ** 8  # noqa: E731
    g = grade(tmp_path / "a", [1, 2, 3], STAB, half)["stab"]
    assert g.status == "inconclusive" and "straddles" in g.reason
    g = grade(tmp_path / "b", [1, 2], STAB, constant)["stab"]  # one pair: a zero-width interval
    assert g.status == "inconclusive" and "at least 3 seeds" in g.reason and g.value == 1.0
    g = grade(tmp_path / "c", [1], OVER, constant)["ov"]
    assert g.status == "inconclusive" and "≥ 2 shared seeds" in g.reason and g.value == 1.0


# --- ablation_spearman ------------------------------------------------------------------------------------


def grade_ablation(root: Path, per_seed: list[tuple[float, float, float]]):
    seeds = list(range(1, len(per_seed) + 1))
    text = spec_text(seeds, "- {id: abl, hypothesis: H1, kind: ablation_spearman, run: abl, metric: grad_x_weight}\n")
    text = text.replace("criteria:", "  - {id: abl, kind: ablation_check, scores: r}\ncriteria:")
    (root / "phase2.yaml").write_text(text)
    spec = load_spec(root / "phase2.yaml")
    for seed, (rho, lo, hi) in zip(seeds, per_seed):
        out = root / f"results/phase2/abl/seed{seed}"
        out.mkdir(parents=True)
        pd.DataFrame({"metric": ["grad_x_weight", "grad_x_weight"], "source": ["calibration", "evaluation"],
                      "rho": [rho, 0.99], "ci_low": [lo, 0.98], "ci_high": [hi, 1.0], "n": 60,
                      "rho_top": 0.5}).to_parquet(out / "transfer.parquet")
    return EVALUATORS["ablation_spearman"](spec.criteria[0], GradeContext(spec, root, {}))


def test_ablation_spearman_by_the_envelope_of_seed_cis(tmp_path):
    for name, per_seed, status in [
        ("pass", [(0.8, 0.7, 0.9), (0.75, 0.6, 0.85)], "pass"),
        ("fail", [(0.2, 0.1, 0.3), (0.25, 0.05, 0.4)], "fail"),
        ("straddle", [(0.8, 0.7, 0.9), (0.45, 0.3, 0.6)], "inconclusive"),  # one seed's CI reaches below 0.5
        ("no-ci", [(0.8, 0.7, 0.9), (0.8, float("nan"), float("nan"))], "inconclusive"),
    ]:
        (tmp_path / name).mkdir()
        g = grade_ablation(tmp_path / name, per_seed)
        assert g.status == status, (name, g.reason)
        assert g.value == pytest.approx(np.mean([p[0] for p in per_seed]))
        if name == "pass":
            assert g.ci == [0.6, 0.9]  # [lowest low, highest high] over seeds
    assert g.ci is None and "no CI" in g.reason
