"""Phase-3 criteria graded on constructed per-window data: every kind passes, fails and is inconclusive on data
built for the case, through analyze_perturb_runs and the registered evaluator; Holm counts identical tests once."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from esa.analysis.power import wilcoxon_power
from esa.report import charts_phase3 as c3
import esa.grading.perturb_criteria  # noqa: F401  (registers the evaluators)
from esa.report import tables_phase3 as t3
from esa.report import tables_phase3_stats as s3
from esa.grading.perturb_analysis import analyze_perturb_runs
from esa.stageio import write_json
from esa.grading.criteria import EVALUATORS, GradeContext
from esa.report.phase2_results import Phase2Results
from esa.spec import load_spec

HEAD = """\
phase: 3
title: t
hypotheses: [{id: H1, statement: s}]
defaults: {model: ref-tiny, data: stdlib-tiny, seeds: [1, 2, 3], protocol: smoke,
           scores: {spec: specs/phase2.yaml, run: gradient, k: 20}}
"""
N_DOCS, PER_DOC, TOKENS = 30, 4, 100


class Project:
    """A spec in tmp_path plus per-window tables: a baseline per evaluation fold and conditions per seed.

    A condition raises each window's mean NLL by ``effect`` + a per-document shift (sd ``doc_sd``) + window noise
    (sd ``win_sd``); ``fixed`` conditions draw the same noise for every seed (a deterministic perturbation of a
    set shared by the seeds).
    """

    def __init__(self, tmp_path, runs: str, criteria: str):
        self.root = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "spec.yaml").write_text(HEAD + "runs:\n" + textwrap.indent(textwrap.dedent(runs), "  ")
                                            + "criteria:\n" + textwrap.indent(textwrap.dedent(criteria), "  "))
        self.spec = load_spec(tmp_path / "spec.yaml")
        self.baselines: dict[str, pd.DataFrame] = {}

    def baseline(self, run_id: str, docs: bool = True) -> pd.DataFrame:
        run = self.spec.run(run_id)
        where = run.baseline_dir()
        if where not in self.baselines:
            rng = np.random.default_rng(run.eval_fold)
            rows = [{"window_id": f"f{run.eval_fold}d{d}:{w}", "doc_id": f"f{run.eval_fold}d{d}", "start": w,
                     "n_tokens": TOKENS, "n_bytes": 3 * TOKENS, "nll_sum": TOKENS * (3.0 + level), "n_correct": 30}
                    for d in range(N_DOCS) for w, level in enumerate(rng.normal(0, 0.2, PER_DOC))]
            table = pd.DataFrame(rows)
            table = table if docs else table.drop(columns="doc_id")
            (self.root / where).mkdir(parents=True, exist_ok=True)
            table.to_parquet(self.root / where / "sequences.parquet", index=False)
            self.baselines[where] = table
        return self.baselines[where]

    def conditions(self, run_id: str, effects: dict, doc_sd: float = 0.01, win_sd: float = 0.002,
                   fixed: tuple[str, ...] = (), docs: bool = True, **columns) -> None:
        """``effects``: {(level, target): mean ΔNLL per token, or (mean, doc_sd, win_sd) for that condition}."""
        run = self.spec.run(run_id)
        base = self.baseline(run_id, docs)
        doc_codes = np.repeat(np.arange(N_DOCS), PER_DOC)
        for seed in run.seeds:
            frames = []
            for i, ((level, target), effect) in enumerate(effects.items()):
                rng = np.random.default_rng((0 if target in fixed else seed, i, run.eval_fold))
                mean, sd_d, sd_w = effect if isinstance(effect, tuple) else (effect, doc_sd, win_sd)
                shift = mean + sd_d * rng.standard_normal(N_DOCS)[doc_codes] + sd_w * rng.standard_normal(len(base))
                frames.append(base.assign(nll_sum=base["nll_sum"] + TOKENS * shift, target=target, level=level,
                                          n_touched=20, **columns))
            out = self.root / f"results/{self.spec.name}/{run_id}/seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            pd.concat(frames, ignore_index=True).to_parquet(out / "conditions.parquet", index=False)

    def grade(self, criterion_id: str, n_boot: int = 1000):
        self.analysis = analyze_perturb_runs(self.spec, self.root, n_boot=n_boot)
        write_json(self.root / f"results/{self.spec.name}/analysis.json", self.analysis)  # as the grade stage does
        criterion = next(c for c in self.spec.criteria if c.id == criterion_id)
        return EVALUATORS[criterion.kind](criterion, GradeContext(self.spec, self.root, self.analysis))


def one_run(tmp_path, criterion: str, effects: dict, run: str = "{id: a, kind: perturb, perturbation: zero}",
            **kw):
    project = Project(tmp_path, f"- {run}\n", f"- {{id: c, hypothesis: H1, run: a, {criterion}}}\n")
    project.conditions("a", effects, **kw)
    return project.grade("c"), project


def chain(sup: float, rnd: float, bot: float, level: float = 1.0) -> dict:
    return {(level, "super"): sup, (level, "random_k"): rnd, (level, "bottom_k"): bot}


# --- ratio ---------------------------------------------------------------------------------------------------


def test_ratio_passes_fails_and_is_inconclusive_by_the_envelope(tmp_path):
    grade, project = one_run(tmp_path / "pass", "kind: ratio, threshold: 5", chain(0.3, 0.02, 0.005))
    assert grade.status == "pass", grade.reason
    ratios = [t["ratio"] for t in project.analysis["runs"]["a"]["tests"] if t["b"] == "random_k"]
    assert grade.ci == [min(r["ci_low"] for r in ratios), max(r["ci_high"] for r in ratios)]
    assert grade.ci[0] >= 5 and "30 documents, 120 windows" in grade.reason
    grade, _ = one_run(tmp_path / "fail", "kind: ratio, threshold: 5", chain(0.06, 0.03, 0.005))
    assert grade.status == "fail" and grade.ci[1] < 5, grade.reason
    # ΔPPL(super) ≈ 5·ΔPPL(random_k) with document-level noise: the envelope straddles 5.
    grade, _ = one_run(tmp_path / "mid", "kind: ratio, threshold: 5", chain(0.05, 0.01, 0.001), doc_sd=0.01)
    assert grade.status == "inconclusive" and grade.ci[0] < 5 < grade.ci[1], grade.reason


def test_ratio_with_an_unstable_control_has_an_unbounded_envelope(tmp_path):
    grade, project = one_run(tmp_path, "kind: ratio, threshold: 5", chain(0.02, 0.0005, 0.0), doc_sd=0.005)
    statuses = {t["ratio"]["status"] for t in project.analysis["runs"]["a"]["tests"] if t["b"] == "random_k"}
    assert "unstable" in statuses and grade.ci[1] == math.inf
    assert grade.status != "pass" or grade.ci[0] >= 5


def test_ratio_without_doc_ids_falls_back_to_windows_and_says_so(tmp_path):
    grade, project = one_run(tmp_path, "kind: ratio, threshold: 5", chain(0.3, 0.02, 0.005), docs=False)
    assert grade.status == "pass" and "no doc_id column" in grade.reason
    result = project.analysis["runs"]["a"]
    assert not result["clustered"] and result["n_docs"] == N_DOCS * PER_DOC
    assert result["tests"][0]["test"]["unit"] == "window" and "no doc_id" in result["tests"][0]["test"]["reason"]


# --- hierarchy -----------------------------------------------------------------------------------------------


def test_hierarchy_passes_fails_and_is_inconclusive_at_noise_level(tmp_path):
    grade, _ = one_run(tmp_path / "pass", "kind: hierarchy", chain(0.3, 0.05, 0.01))
    assert grade.status == "pass" and grade.value == 1.0, grade.reason
    grade, _ = one_run(tmp_path / "fail", "kind: hierarchy", chain(0.3, 0.01, 0.05))
    assert grade.status == "fail" and grade.value == 0.0 and "reversed: random_k − bottom_k" in grade.reason
    # random_k and bottom_k 1e-4 apart (ΔPPL ~ 1e-3) under noise: neither order can be told.
    grade, _ = one_run(tmp_path / "tie", "kind: hierarchy", chain(0.3, 0.0101, 0.0100), doc_sd=0.005)
    assert grade.status == "inconclusive" and "indistinguishable at noise level" in grade.reason, grade.reason


def test_hierarchy_reversal_must_survive_holm(tmp_path):
    """One seed's 95% CI below 0 among several seeds and steps is what chance gives now and then: a reversal fails
    the hierarchy only when its Holm-corrected reverse-direction p clears α (built by hand around one analysis)."""
    grade, project = one_run(tmp_path, "kind: hierarchy", chain(0.3, 0.05, 0.01))
    criterion = project.spec.criteria[0]
    tests = [t for t in project.analysis["runs"]["a"]["tests"] if (t["a"], t["b"]) == ("random_k", "bottom_k")]
    flipped = tests[0]
    family = project.analysis["families"]["confirmatory"]
    flipped["diff"].update(diff=-0.004, ci_low=-0.007, ci_high=-0.001)  # this seed: reversed at 95% ...
    family["less"]["adjusted"][flipped["test_key"]] = 0.2             # ... but not after Holm in its family
    grade = EVALUATORS["hierarchy"](criterion, GradeContext(project.spec, project.root, project.analysis))
    assert grade.status == "inconclusive" and "not significant after Holm" in grade.reason, grade.reason
    family["less"]["adjusted"][flipped["test_key"]] = 0.001
    grade = EVALUATORS["hierarchy"](criterion, GradeContext(project.spec, project.root, project.analysis))
    assert grade.status == "fail" and "Holm-significant in the reverse direction" in grade.reason, grade.reason


def test_hierarchy_compares_random_matched_with_super(tmp_path):
    run = "{id: a, kind: perturb, perturbation: bit_flip, bit: 26, controls: [random_k, random_matched, bottom_k]}"
    effects = {**chain(0.3, 0.05, 0.01), (1.0, "random_matched"): 0.6}  # magnitude-matched control hurts more
    grade, _ = one_run(tmp_path, "kind: hierarchy", effects, run=run)
    assert grade.status == "fail" and "super − random_matched" in grade.reason, grade.reason


# --- significance --------------------------------------------------------------------------------------------


def test_significance_passes_fails_the_other_way_and_is_inconclusive_with_power(tmp_path):
    grade, _ = one_run(tmp_path / "pass", "kind: significance", chain(0.1, 0.02, 0.0))
    assert grade.status == "pass" and grade.p == grade.value < 0.01, grade.reason
    assert "n = 30 documents (120 windows)" in grade.reason
    grade, _ = one_run(tmp_path / "fail", "kind: significance", chain(0.02, 0.1, 0.0))
    assert grade.status == "fail" and "random_k does significantly more harm than super" in grade.reason
    grade, project = one_run(tmp_path / "tie", "kind: significance", chain(0.0201, 0.02, 0.0), doc_sd=0.01)
    assert grade.status == "inconclusive" and grade.value >= 0.01, grade.reason
    family = project.analysis["families"]["confirmatory"]
    worst = max((t for t in project.analysis["runs"]["a"]["tests"] if t["b"] == "random_k"),
                key=lambda t: family["adjusted"][t["test_key"]])
    m = family["n_tests"]
    assert m == 3  # the criterion's three seeds: comparisons no criterion grades stay out of its family
    observed = wilcoxon_power(worst["test"]["cohen_dz"], 30, alpha=0.01, m_tests=m)
    stated = wilcoxon_power(0.5, 30, alpha=0.01, m_tests=m)
    assert worst["test"]["cohen_dz"] <= 0 and "the observed d_z: effect size" in grade.reason, observed
    assert (f"power {stated.power:.2f} for a stated d_z = 0.5, {stated.n_for_target:.0f} documents needed for 80%"
            in grade.reason)


# --- monotonic -----------------------------------------------------------------------------------------------

DOSE = "{id: a, kind: perturb, perturbation: gauss_noise, levels: [0.1, 0.3, 1.0, 3.0]}"


def dose(values: list[float]) -> dict:
    return {(lv, "super"): v for lv, v in zip([0.1, 0.3, 1.0, 3.0], values)}


def test_monotonic_passes_fails_and_is_inconclusive_by_the_rho_interval(tmp_path):
    grade, _ = one_run(tmp_path / "pass", "kind: monotonic, threshold: 0.9", dose([0.01, 0.03, 0.1, 0.3]), run=DOSE)
    assert grade.status == "pass" and grade.ci == [1.0, 1.0], grade.reason
    grade, _ = one_run(tmp_path / "fail", "kind: monotonic, threshold: 0.9", dose([0.3, 0.1, 0.03, 0.01]), run=DOSE)
    assert grade.status == "fail" and grade.ci[1] < 0.9, grade.reason
    # Two middle levels 1e-4 apart: resamples swap them, so ρ is 1 in some and 0.8 in others.
    grade, project = one_run(tmp_path / "swap", "kind: monotonic, threshold: 0.9", dose([0.01, 0.1, 0.1001, 0.3]),
                             run=DOSE, doc_sd=0.01)
    assert grade.status == "inconclusive" and grade.ci == pytest.approx([0.8, 1.0]), grade.reason
    assert project.analysis["runs"]["a"]["dose"]["super"]["n_distinguishable"] == 4


def test_monotonic_is_inconclusive_when_levels_cannot_be_told_from_zero(tmp_path):
    # Doses too small to change any NLL (ΔPPL exactly 0), then one that hurts: ρ = 0.77 on ties alone.
    zero = (0.0, 0.0, 0.0)
    grade, project = one_run(tmp_path, "kind: monotonic, threshold: 0.5", dose([zero, zero, zero, 0.2]), run=DOSE)
    assert project.analysis["runs"]["a"]["dose"]["super"]["n_distinguishable"] == 1
    assert grade.status == "inconclusive" and "at most one level" in grade.reason


# --- min_effect ----------------------------------------------------------------------------------------------


def test_min_effect_passes_fails_and_is_inconclusive(tmp_path):
    grade, _ = one_run(tmp_path / "pass", "kind: min_effect, threshold: 0.1", chain(0.05, 0.0, 0.0))
    assert grade.status == "pass" and grade.ci[0] >= 0.1, grade.reason  # ΔPPL ≈ 20·0.05 ≈ 1
    grade, _ = one_run(tmp_path / "fail", "kind: min_effect, threshold: 0.1", chain(0.0005, 0.0, 0.0))
    assert grade.status == "fail" and grade.ci[1] < 0.1, grade.reason
    grade, _ = one_run(tmp_path / "mid", "kind: min_effect, threshold: 0.1", chain(0.005, 0.0, 0.0), doc_sd=0.02)
    assert grade.status == "inconclusive" and grade.ci[0] < 0.1 < grade.ci[1], grade.reason


def test_min_effect_counts_a_diverged_model_as_the_largest_effect(tmp_path):
    grade, _ = one_run(tmp_path, "kind: min_effect, threshold: 0.1", chain(math.inf, 0.0, 0.0), doc_sd=0, win_sd=0)
    assert grade.status == "pass" and grade.value == math.inf and "largest possible effect" in grade.reason


# --- repeatability and determinism ---------------------------------------------------------------------------


def two_runs(tmp_path, kind: str, fold: int, first: dict, second: dict, threshold: str = ""):
    runs = (f"- {{id: a, kind: perturb, perturbation: zero}}\n"
            f"- {{id: b, kind: perturb, perturbation: zero, eval_fold: {fold}}}\n")
    project = Project(tmp_path, runs, f"- {{id: c, hypothesis: H1, kind: {kind}, run: a, repeat: b{threshold}}}\n")
    project.conditions("a", first)
    project.conditions("b", second)
    return project.grade("c"), project


def test_repeatability_on_disjoint_documents(tmp_path):
    grade, project = two_runs(tmp_path / "pass", "repeatability", 1, chain(0.1, 0.02, 0.0), chain(0.1, 0.02, 0.0))
    assert grade.status == "pass" and grade.ci[1] < 0.5, grade.reason
    pair = project.analysis["pairs"]["a|b"]
    assert pair["shared_windows"] == 0 and pair["shared_docs"] == 0 and pair["eval_fold"] == [0, 1]
    rep = pair["repeatability"]["super"]
    rel = [abs(x - y) / ((x + y) / 2) for x, y in zip(rep["delta_a"], rep["delta_b"])]
    assert grade.value == pytest.approx(np.mean(rel))
    grade, _ = two_runs(tmp_path / "fail", "repeatability", 1, chain(0.1, 0.02, 0.0), chain(0.3, 0.02, 0.0))
    assert grade.status == "fail" and grade.ci[0] > 0.5, grade.reason  # ΔPPL about 3× apart
    grade, _ = two_runs(tmp_path / "same", "repeatability", 0, chain(0.1, 0.02, 0.0), chain(0.1, 0.02, 0.0))
    assert grade.status == "inconclusive" and "use kind: determinism" in grade.reason


def test_determinism_needs_identical_results_on_identical_windows(tmp_path):
    grade, _ = two_runs(tmp_path / "pass", "determinism", 0, chain(0.1, 0.02, 0.0), chain(0.1, 0.02, 0.0))
    assert grade.status == "pass" and grade.value == 0.0, grade.reason
    grade, _ = two_runs(tmp_path / "fail", "determinism", 0, chain(0.1, 0.02, 0.0), chain(0.1, 0.0201, 0.0))
    assert grade.status == "fail" and grade.value > 0, grade.reason
    grade, _ = two_runs(tmp_path / "other", "determinism", 1, chain(0.1, 0.02, 0.0), chain(0.1, 0.02, 0.0))
    assert grade.status == "inconclusive" and "different windows" in grade.reason


def test_missing_evidence_is_inconclusive(tmp_path):
    project = Project(tmp_path, "- {id: a, kind: perturb, perturbation: zero}\n",
                      "- {id: c, hypothesis: H1, kind: ratio, run: a}\n")
    grade = project.grade("c")
    assert grade.status == "inconclusive" and "missing evidence" in grade.reason


# --- Holm family ---------------------------------------------------------------------------------------------


def test_holm_counts_identical_tests_once(tmp_path):
    # scores.seed fixed: every seed perturbs the same super set, and bottom_k is deterministic, so the three
    # seeds' super-vs-bottom_k tests are one test; random_k is redrawn per seed.
    run = "{id: a, kind: perturb, perturbation: zero, scores: {run: gradient, k: 20, seed: 1}}"
    project = Project(tmp_path, f"- {run}\n", "- {id: c, hypothesis: H1, kind: significance, run: a}\n")
    project.conditions("a", chain(0.1, 0.02, 0.01), fixed=("super", "bottom_k"))
    project.grade("c")
    tests = project.analysis["runs"]["a"]["tests"]
    holm = project.analysis["holm"]
    assert len(tests) == 9 and holm["n_comparisons"] == 9
    assert holm["n_tests"] == 7 and holm["n_duplicates"] == 2  # 3 super>random_k, 1 super>bottom_k, 3 random>bottom
    bottom = [t for t in tests if (t["a"], t["b"]) == ("super", "bottom_k")]
    assert len({t["test_key"] for t in bottom}) == 1 and len({t["wilcoxon_p_holm"] for t in bottom}) == 1
    distinct = {t["test_key"]: t["test"]["wilcoxon_p"] for t in tests}
    _, adjusted, _, _ = multipletests(list(distinct.values()), method="holm")
    expected = dict(zip(distinct, adjusted))
    assert all(t["wilcoxon_p_holm"] == pytest.approx(expected[t["test_key"]]) for t in tests)
    assert all(t["power"]["m_tests"] == 7 for t in tests)


# --- what the page shows from the analysis --------------------------------------------------------------------


def test_page_shows_documents_cis_fold_and_grew_shrank_counts(tmp_path):
    grade, project = one_run(tmp_path, "kind: hierarchy", chain(0.3, 0.0101, 0.0100), doc_sd=0.005, n_grew=12,
                             n_shrank=8, n_unchanged=0)
    analysis, runs = project.analysis, [project.spec.run("a")]
    rows = c3.condition_rows(analysis)
    summary = c3.condition_summary(rows, analysis=analysis)
    effect = next(e for e in analysis["runs"]["a"]["effects"] if e["target"] == "super")
    sup = summary.set_index("target").loc["super"]
    assert sup["ci_kind"] == "documents" and (sup["ci_low"], sup["ci_high"]) == (effect["ci_low"], effect["ci_high"])
    assert t3.conditions_frame(summary, runs)["95% CI (documents)"].iloc[0].startswith("[")
    assert (c3.condition_summary(rows)["ci_kind"] == "seeds").all()  # without the analysis: the t-interval
    frame = t3.perturbed_frame(runs, Phase2Results(project.root, phase="phase3"))
    assert frame.loc[0, "evaluation"] == "fold 0 of 2: 30 documents, 120 windows"
    assert frame.loc[0, "grew/shrank/unchanged per set"] == "12/8/0 · 12/8/0 · 12/8/0"
    stats = s3.stats_frame(analysis, runs)
    assert (stats["n_docs"] == 30).all()
    said = t3.hierarchy_sentences(summary, runs, {"a": 1.0}, analysis)
    assert grade.status == "inconclusive" and said == [
        "Some step is **indistinguishable at noise level** for `a`: random_k > bottom_k: CI straddles 0 (mean ΔPPL "
        + t3._order_text(dict(zip(summary["target"], summary["mean"]))) + ")."]


def test_page_states_the_repeat_folds_and_relative_difference(tmp_path):
    grade, project = two_runs(tmp_path, "repeatability", 1, chain(0.1, 0.02, 0.0), chain(0.1, 0.02, 0.0))
    rows = c3.condition_rows(project.analysis)
    pair = project.analysis["pairs"]["a|b"]
    said = t3.repeat_sentence(t3.repeat_frame(rows, "a", "b"), "a", "b", pair)
    assert said.startswith("`a` (fold 0, 30 documents) and `b` (fold 1, 30 documents) read disjoint text")
    assert f"{t3.fmt(grade.value)} [{t3.fmt(grade.ci[0])}, {t3.fmt(grade.ci[1])}]" in said


def test_stats_table_shows_an_unstable_ratio_as_unbounded(tmp_path):
    _, project = one_run(tmp_path, "kind: ratio, threshold: 5", chain(0.02, 0.0005, 0.0), doc_sd=0.005)
    stats = s3.stats_frame(project.analysis, [project.spec.run("a")])
    row = stats[stats["pair"] == "super vs random_k"].iloc[0]
    assert row["ratio_high"] == math.inf and "unstable" in row["ratio_note"]
    _, cells = s3.stats_cells(stats, [project.spec.run("a")], plain=True)
    assert "∞]" in cells[0][3]
