import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from esa.analysis.dose_response import hierarchy
from esa.analysis.paired import (align, cluster_boot, compare_paired, compare_to_baseline, delta_ppl, delta_table,
                                 diff_from, doc_deltas, holm, percentile_ci, ppl, ratio_ci)
from esa.analysis.power import wilcoxon_power, power_of


def _table(nll_sum, n_tokens=None, ids=None):
    n = len(nll_sum)
    return pd.DataFrame({"window_id": ids or [f"w{i}" for i in range(n)],
                         "n_tokens": n_tokens or [10] * n, "nll_sum": nll_sum})


def _frame(mean_nll, tokens):
    return pd.DataFrame({"window_id": [f"w{i}" for i in range(len(tokens))], "n_tokens": tokens,
                         "nll_sum": mean_nll * tokens})


def _windows(n=200, seed=0, shift=0.0, noise=0.05, base=None):
    """A baseline (base=None) or a condition raising each baseline window's mean NLL by shift + noise."""
    tokens = np.random.default_rng(7).integers(50, 150, n)  # the same windows in every table
    if base is None:
        mean_nll = 3.0 + 0.3 * np.random.default_rng(123).standard_normal(n)
    else:
        mean_nll = base + shift + noise * np.random.default_rng(seed).standard_normal(n)
    return _frame(mean_nll, tokens), mean_nll


def test_ppl_is_token_weighted_hand_example():
    df = _table([2.0, 9.0, 4.0], [1, 3, 4])
    assert ppl(df) == pytest.approx(math.exp(15.0 / 8.0))
    # not the mean of per-window PPLs
    assert ppl(df) != pytest.approx(np.mean(np.exp([2.0, 3.0, 1.0])))
    cond = _table([3.0, 12.0, 4.0], [1, 3, 4])
    assert delta_ppl(df, cond) == pytest.approx(math.exp(19 / 8) - math.exp(15 / 8))
    assert math.isnan(ppl(_table([1.0, float("inf"), 2.0])))


def test_delta_table_joins_on_window_id():
    base = _table([2.0, 9.0, 4.0], [1, 3, 4])
    cond = _table([4.0, 3.0, 12.0], [4, 1, 3], ids=["w2", "w0", "w1"])  # shuffled rows
    t = delta_table(base, cond)
    assert list(t.columns) == ["window_id", "doc_id", "n_tokens", "base_nll", "cond_nll", "delta_nll"]
    assert t["window_id"].tolist() == ["w0", "w1", "w2"]
    assert t["doc_id"].tolist() == ["w0", "w1", "w2"] and t.attrs["clustered"] is False  # no doc_id: own cluster
    assert t["base_nll"].tolist() == pytest.approx([2.0, 3.0, 1.0])
    assert t["delta_nll"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="same windows"):
        delta_table(base, _table([1.0, 2.0, 3.0], [1, 3, 4], ids=["w0", "w1", "x"]))
    with pytest.raises(ValueError, match="same windows"):
        delta_table(base, _table([1.0, 2.0], [1, 3]))
    with pytest.raises(ValueError, match="n_tokens"):
        delta_table(base, _table([1.0, 2.0, 3.0], [1, 3, 5]))


def test_ratio_ci_point_estimate_and_determinism():
    base, m = _windows()
    sup, _ = _windows(seed=1, shift=0.3, base=m)
    ctl, _ = _windows(seed=2, shift=0.1, base=m)
    res = ratio_ci(base, sup, ctl, n_boot=500, seed=0)
    assert res.status == "ok", res.reason
    assert res.ratio == pytest.approx(delta_ppl(base, sup) / delta_ppl(base, ctl))
    assert res.ppl_baseline == pytest.approx(ppl(base))
    assert res.ci_low <= res.ratio <= res.ci_high
    assert res.frac_control_nonpositive == 0 and res.n_boot_defined == 500
    again = ratio_ci(base, sup, ctl, n_boot=500, seed=0)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)
    other = ratio_ci(base, sup, ctl, n_boot=500, seed=1)
    assert (other.ci_low, other.ci_high) != (res.ci_low, res.ci_high)
    assert set(res.as_dict()) >= {"status", "ratio", "ci_low", "ci_high", "frac_control_nonpositive"}


def test_ratio_ci_unstable_and_undefined_control():
    base, m = _windows(n=100)
    sup, _ = _windows(n=100, seed=1, shift=0.3, base=m)
    noisy, _ = _windows(n=100, seed=2, shift=0.0005, noise=0.2, base=m)  # control Δ straddles zero
    res = ratio_ci(base, sup, noisy, n_boot=300, seed=0)
    assert res.delta_control > 0 and res.frac_control_nonpositive > 0.025
    assert res.status == "unstable" and "unbounded" in res.reason
    assert res.ci_high == math.inf and res.ci_low <= res.ratio <= res.ci_high_defined
    below, _ = _windows(n=100, seed=3, shift=-0.1, base=m)
    und = ratio_ci(base, sup, below, n_boot=100, seed=0)
    assert und.status == "undefined" and math.isnan(und.ratio) and und.frac_control_nonpositive == 1.0


def test_ratio_ci_diverged_is_reported_not_raised():
    base, m = _windows(n=20)
    sup, _ = _windows(n=20, seed=1, shift=0.3, base=m)
    ctl, _ = _windows(n=20, seed=2, shift=0.1, base=m)
    sup.loc[3, "nll_sum"] = float("inf")
    sup.loc[5, "nll_sum"] = float("nan")
    res = ratio_ci(base, sup, ctl, n_boot=100, seed=0)
    assert res.status == "diverged"
    assert res.n_nonfinite == {"baseline": 0, "super": 2, "control": 0}
    assert math.isnan(res.ratio) and math.isnan(res.ci_low)


def test_compare_paired_matches_scipy():
    rng = np.random.default_rng(0)
    a = 0.5 + rng.standard_normal(40)
    b = 0.2 + rng.standard_normal(40)
    res = compare_paired(a, b)
    d = a - b
    assert res.status == "ok" and res.n == 40
    assert res.mean_diff == pytest.approx(d.mean())
    assert res.cohen_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert res.cohen_dz == pytest.approx(res.t_stat / math.sqrt(40))
    t = stats.ttest_rel(a, b, alternative="greater")
    w = stats.wilcoxon(a, b, alternative="greater")
    assert (res.t_stat, res.t_p) == pytest.approx((t.statistic, t.pvalue))
    assert (res.wilcoxon_stat, res.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue))
    half = stats.t.ppf(0.975, 39) * d.std(ddof=1) / math.sqrt(40)
    assert (res.ci_low, res.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    reverse = compare_paired(b, a)
    assert reverse.t_p == pytest.approx(1 - res.t_p)


def test_compare_paired_joins_delta_tables():
    base = _table([2.0, 9.0, 4.0, 5.0], [1, 3, 4, 5])
    a = delta_table(base, _table([3.0, 12.0, 8.0, 10.0], [1, 3, 4, 5]))  # Δ = 1, 1, 1, 1
    shuffled = _table([4.0, 5.0, 9.0, 2.0], [4, 5, 3, 1], ids=["w2", "w3", "w1", "w0"])
    b = delta_table(shuffled, _table([4.0, 6.0, 9.0, 2.5], [4, 5, 3, 1], ids=["w2", "w3", "w1", "w0"]))
    res = compare_paired(a, b)  # per window: Δa − Δb = 1 − [0.5, 0, 0, 0.2]
    assert res.mean_diff == pytest.approx(np.mean([0.5, 1.0, 1.0, 0.8]))


def test_one_sample_and_degenerate_cases():
    rng = np.random.default_rng(1)
    delta = 0.1 + 0.2 * rng.standard_normal(30)
    res = compare_to_baseline(delta)
    t = stats.ttest_1samp(delta, 0.0, alternative="greater")
    w = stats.wilcoxon(delta, alternative="greater")
    assert res.kind == "one_sample"
    assert (res.t_p, res.wilcoxon_p) == pytest.approx((t.pvalue, w.pvalue))
    assert compare_to_baseline([0.0] * 5).status == "inconclusive"
    assert compare_to_baseline([1.0]).status == "inconclusive"
    div = compare_paired([1.0, float("inf"), 2.0], [0.0, 0.0, 0.0])
    assert div.status == "diverged" and math.isnan(div.t_p)


def test_holm_matches_hand_computation():
    res = holm({"a": 0.01, "b": 0.04, "c": 0.03}, alpha=0.05)
    # sorted: a 0.01*3 = 0.03; c max(0.03, 0.03*2) = 0.06; b max(0.06, 0.04*1) = 0.06
    assert res.adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert res.reject == {"a": True, "b": False, "c": False}
    with_nan = holm({"a": 0.01, "b": float("nan")})
    assert with_nan.excluded == ["b"] and with_nan.adjusted["a"] == pytest.approx(0.01)


def test_hierarchy():
    assert hierarchy({"super": 3.0, "random": 1.0, "bottom": 0.1}).holds
    res = hierarchy({"super": 3.0, "random": 0.1, "bottom": 0.1})
    assert res.status == "fail" and res.failed == ["random > bottom"]
    assert hierarchy({"super": 0.5, "random": 1.0, "bottom": 0.1}).failed == ["super > random"]
    assert hierarchy({"super": float("nan"), "random": 1.0, "bottom": 0.1}).status == "inconclusive"


def test_power_is_the_wilcoxon_at_holm_bonferroni_alpha_via_statsmodels():
    analysis = TTestPower()
    are = 3 / math.pi  # the Wilcoxon's asymptotic relative efficiency against the t-test
    res = wilcoxon_power(0.3, 40, alpha=0.01, m_tests=5)
    assert res.alpha_test == pytest.approx(0.002) and "3/π" in res.method
    assert res.power == pytest.approx(analysis.power(effect_size=0.3, nobs=40 * are, alpha=0.002,
                                                     alternative="larger"))
    needed = analysis.solve_power(effect_size=0.3, power=0.8, alpha=0.002, alternative="larger")
    assert res.n_for_target == math.ceil(needed / are)
    assert wilcoxon_power(0.3, int(res.n_for_target), alpha=0.01, m_tests=5).power >= 0.8
    assert wilcoxon_power(0.3, int(res.n_for_target) - 1, alpha=0.01, m_tests=5).power < 0.8
    assert wilcoxon_power(0.3, 40, alpha=0.01, m_tests=1).power > res.power  # a larger family costs power
    for bad in (0.0, -0.2, float("nan")):
        out = wilcoxon_power(bad, 20)
        assert math.isnan(out.power) and math.isnan(out.n_for_target) and out.reason
    rng = np.random.default_rng(2)
    test = compare_to_baseline(0.1 + 0.2 * rng.standard_normal(30))
    assert power_of(test, alpha=0.01, m_tests=3).power == pytest.approx(
        wilcoxon_power(test.cohen_dz, 30, alpha=0.01, m_tests=3).power)
    assert math.isnan(power_of(compare_to_baseline([1.0])).power)


# --- documents as clusters -------------------------------------------------------------------------------------


def _clustered(n_docs=20, per_doc=8, doc_sd=0.05, win_sd=0.005, seed=0):
    """Baseline, super and control on documents whose windows share a per-document shift (correlated windows)."""
    rng = np.random.default_rng(seed)
    docs = np.repeat([f"d{i}" for i in range(n_docs)], per_doc)
    tokens = rng.integers(50, 150, len(docs))
    base_mean = 3.0 + 0.2 * rng.standard_normal(len(docs))

    def table(shift):
        return pd.DataFrame({"window_id": [f"w{i}" for i in range(len(docs))], "doc_id": docs, "n_tokens": tokens,
                             "nll_sum": (base_mean + shift) * tokens})

    def effect(mean):
        return mean + doc_sd * rng.standard_normal(n_docs).repeat(per_doc) + win_sd * rng.standard_normal(len(docs))

    return table(0.0), table(effect(0.3)), table(effect(0.05))


def test_cluster_bootstrap_is_wider_than_the_window_bootstrap_for_correlated_windows():
    base, sup, ctl = _clustered()
    by_doc = ratio_ci(base, sup, ctl, n_boot=2000, seed=0)
    by_window = ratio_ci(*(t.drop(columns="doc_id") for t in (base, sup, ctl)), n_boot=2000, seed=0)
    assert (by_doc.n_docs, by_window.n_docs) == (20, 160) and "documents" in by_doc.method
    assert by_doc.ratio == pytest.approx(by_window.ratio)
    assert by_doc.ci_high - by_doc.ci_low > 1.5 * (by_window.ci_high - by_window.ci_low)
    assert "no doc_id column" in by_window.reason and "no doc_id" not in by_doc.reason


def test_cluster_resamples_keep_documents_whole():
    base, sup, _ = _clustered(n_docs=5, per_doc=3)
    al = align(base, {"super": sup})
    boot = cluster_boot(al, 200, seed=1)
    assert boot.counts.shape == (200, 5) and (boot.counts.sum(axis=1) == 5).all()
    # Resample 0 by hand: every window of each drawn document, as often as the document is drawn.
    weights = boot.counts[0][al.docs]
    by_hand = math.exp((weights * al.nll["super"]).sum() / (weights * al.tokens).sum())
    assert boot.ppl(al.nll["super"])[0] == pytest.approx(by_hand)
    assert (boot.ppl(np.where(np.arange(15) == 3, np.inf, al.nll["super"])) == np.inf).all()


def test_diff_ci_and_diverged_sides():
    base, sup, ctl = _clustered()
    al = align(base, {"a": sup, "b": ctl})
    res = diff_from(al, cluster_boot(al, 500, seed=0), "a", "b")
    assert res.diff == pytest.approx(delta_ppl(base, sup) - delta_ppl(base, ctl))
    assert res.ci_low < res.diff < res.ci_high and res.ci_low > 0
    broken = sup.assign(nll_sum=np.inf)
    al = align(base, {"a": broken, "b": ctl, "c": broken})
    boot = cluster_boot(al, 50, seed=0)
    assert diff_from(al, boot, "a", "b").ci_low == math.inf and diff_from(al, boot, "b", "a").ci_high == -math.inf
    assert math.isnan(diff_from(al, boot, "a", "c").diff)
    assert percentile_ci(np.array([1.0, 2.0, np.inf, np.inf]), 0.5) == (1.0, math.inf)


def test_per_document_tests_agree_with_scipy_on_aggregated_data():
    base, sup, ctl = _clustered(n_docs=25, per_doc=6)
    da, db = delta_table(base, sup), delta_table(base, ctl)
    res = compare_paired(da, db)
    # Per document by hand: Σ ΔNLL·tokens / Σ tokens over its windows.
    frame = da.assign(d=(da["delta_nll"] - db["delta_nll"]) * da["n_tokens"])
    per_doc = frame.groupby("doc_id")["d"].sum() / frame.groupby("doc_id")["n_tokens"].sum()
    assert (res.unit, res.n, res.n_windows) == ("document", 25, 150)
    assert doc_deltas(da).sub(doc_deltas(db)).to_numpy() == pytest.approx(per_doc.to_numpy())
    w = stats.wilcoxon(per_doc.to_numpy(), alternative="greater")
    t = stats.ttest_1samp(per_doc.to_numpy(), 0.0, alternative="greater")
    assert (res.wilcoxon_stat, res.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue))
    assert res.wilcoxon_p_less == pytest.approx(stats.wilcoxon(per_doc.to_numpy(), alternative="less").pvalue)
    assert res.t_p == pytest.approx(t.pvalue)
    assert res.cohen_dz == pytest.approx(per_doc.mean() / per_doc.std(ddof=1))
