"""Do scores rank backdoored siblings above clean ones? A leave-one-out nearest-centroid rule scores every sibling
without having seen it (``loo_scores``); ``auc_with_ci`` gives the AUC with a stratified-bootstrap interval and a
label-permutation null (numpy and scipy only, so grade stages never load the engine).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import bootstrap, mannwhitneyu, permutation_test


def centroid_score(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray) -> float:
    """Nearest-centroid evidence for class 1 at ``x``: squared distance to the class-0 centroid minus that to the
    class-1 centroid (positive = closer to the backdoored siblings)."""
    c1 = train_x[train_y == 1].mean(axis=0)
    c0 = train_x[train_y == 0].mean(axis=0)
    return float(np.sum((x - c0) ** 2) - np.sum((x - c1) ** 2))


def _labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (clean) or 1 (backdoored)")
    return y.astype(int)


def loo_scores(features: np.ndarray, labels) -> np.ndarray:
    """Leave-one-out nearest-centroid scores: sibling i is scored by centroids fitted on every sibling but i, so
    neither its features nor its label shape the rule that scores it. Needs two siblings of each class."""
    x = np.asarray(features, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    y = _labels(labels)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows for {len(y)} labels")
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        raise ValueError("leave-one-out needs at least two siblings of each class")
    keep = np.ones(len(y), dtype=bool)
    out = np.empty(len(y))
    for i in range(len(y)):
        keep[i] = False
        out[i] = centroid_score(x[keep], y[keep], x[i])
        keep[i] = True
    return out


def auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(a backdoored score exceeds a clean one), ties counting one half: Mann–Whitney U / (n_pos · n_neg)."""
    u = mannwhitneyu(pos, neg, axis=axis, method="asymptotic").statistic
    return u / (np.shape(pos)[axis] * np.shape(neg)[axis])


@dataclass(frozen=True)
class AucResult:
    auc: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float  # one-sided: AUC at least this large when labels carry no structure
    null_mean: float  # mean AUC over the permutation null (0.5 in expectation)
    n_pos: int
    n_neg: int
    n_boot: int
    n_perm: int

    def to_dict(self) -> dict:
        return asdict(self)


def auc_with_ci(scores, labels, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                n_perm: int = 9999) -> AucResult:
    """AUC of ``scores`` for ``labels`` (1 = backdoored), a percentile CI from a stratified bootstrap over
    siblings (backdoored and clean resampled separately, so every resample keeps both class counts), and the
    permutation null (labels shuffled; exact when the distinct relabellings number at most ``n_perm``)."""
    s = np.asarray(scores, dtype=float)
    y = _labels(labels)
    pos, neg = s[y == 1], s[y == 0]
    if min(len(pos), len(neg)) < 2:
        raise ValueError("a bootstrap interval needs at least two siblings of each class")
    rng = np.random.default_rng(seed)
    point = float(auc(pos, neg))
    boot = bootstrap((pos, neg), auc, n_resamples=n_boot, confidence_level=confidence, method="percentile",
                     vectorized=True, random_state=rng)
    null = permutation_test((pos, neg), auc, permutation_type="independent", alternative="greater",
                            n_resamples=n_perm, vectorized=True, random_state=rng)
    return AucResult(auc=point, ci_low=float(boot.confidence_interval.low),
                     ci_high=float(boot.confidence_interval.high), confidence=confidence,
                     p_value=float(null.pvalue), null_mean=float(np.mean(null.null_distribution)),
                     n_pos=len(pos), n_neg=len(neg), n_boot=n_boot, n_perm=n_perm)
