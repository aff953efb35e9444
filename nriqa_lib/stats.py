"""Statistics for every comparison (STUDY_SPEC.md section 4), scipy/statsmodels underneath.

- Across splits: :func:`summarize` (mean, sd, median, t-CI of the mean).
- Two configurations on the same splits: :func:`nadeau_bengio` (corrected resampled t-test; random
  splits overlap, so the plain paired t-test is anti-conservative), :func:`wilcoxon` (signed-rank),
  :func:`compare_paired` (both + effect size), :func:`holm` over the comparisons of one table.
- One shared test set: :func:`bootstrap_ci` (resample images), :func:`williams_t` (two dependent PLCCs
  sharing the MOS), :func:`paired_bootstrap` (difference of two SRCCs sharing the MOS).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = ["summarize", "nadeau_bengio", "wilcoxon", "compare_paired", "holm", "bootstrap_ci", "williams_t",
           "paired_bootstrap"]


def summarize(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, sd (ddof=1), median, n and the t-interval of the mean over splits."""
    v = np.asarray(values, dtype=float)
    n = v.size
    mean, sd = float(v.mean()), float(v.std(ddof=1)) if n > 1 else 0.0
    if n > 1 and sd > 0:
        lo, hi = stats.t.interval(level, n - 1, loc=mean, scale=sd / np.sqrt(n))
    else:
        lo = hi = mean
    return {"mean": mean, "sd": sd, "median": float(np.median(v)), "n": n, "ci_low": float(lo), "ci_high": float(hi)}


def nadeau_bengio(a: Sequence[float], b: Sequence[float], n_train: int, n_test: int) -> dict[str, float]:
    """Nadeau & Bengio (2003) corrected resampled t-test on paired per-split scores.

    t = mean(d) / sqrt((1/J + n_test/n_train) var(d)), J splits, df = J - 1, two-sided p.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    J = d.size
    if J < 2:
        raise ValueError("need at least 2 paired splits")
    var = d.var(ddof=1)
    if var == 0:
        t = 0.0 if d.mean() == 0 else np.sign(d.mean()) * np.inf
    else:
        t = d.mean() / np.sqrt((1.0 / J + n_test / n_train) * var)
    p = float(2 * stats.t.sf(abs(t), J - 1))
    return {"t": float(t), "df": J - 1, "p": p}


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Wilcoxon signed-rank test (scipy), two-sided; p = 1 when all differences are zero."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if np.all(d == 0):
        return {"w": 0.0, "p": 1.0}
    r = stats.wilcoxon(d)
    return {"w": float(r.statistic), "p": float(r.pvalue)}


def compare_paired(a: Sequence[float], b: Sequence[float], n_train: int, n_test: int) -> dict[str, float]:
    """a vs b on the same splits: mean difference, Cohen's d_z, Nadeau-Bengio and Wilcoxon p-values."""
    d = np.asarray(a, float) - np.asarray(b, float)
    sd = d.std(ddof=1)
    nb = nadeau_bengio(a, b, n_train, n_test)
    return {"diff": float(d.mean()), "d_z": float(d.mean() / sd) if sd > 0 else 0.0, "t_nb": nb["t"],
            "p_nb": nb["p"], "p_wilcoxon": wilcoxon(a, b)["p"]}


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down adjustment (statsmodels multipletests): (reject, adjusted p)."""
    p = np.asarray(pvalues, float)
    if p.size == 0:
        return np.zeros(0, bool), np.zeros(0)
    reject, adj, _, _ = multipletests(p, alpha=alpha, method="holm")
    return reject, adj


def bootstrap_ci(pred: Sequence[float], mos: Sequence[float], metric: Callable[[np.ndarray, np.ndarray], float],
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap CI of ``metric(pred, mos)`` resampling images (scipy.stats.bootstrap, paired)."""
    p, m = np.asarray(pred, float), np.asarray(mos, float)
    res = stats.bootstrap((p, m), metric, paired=True, vectorized=False, n_resamples=n_boot,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return {"value": float(metric(p, m)), "ci_low": float(res.confidence_interval.low),
            "ci_high": float(res.confidence_interval.high)}


def paired_bootstrap(pred_a: Sequence[float], pred_b: Sequence[float], mos: Sequence[float],
                     metric: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """metric(a) - metric(b) on one test set, images resampled jointly; CI and two-sided bootstrap p."""
    a, b, m = (np.asarray(x, float) for x in (pred_a, pred_b, mos))

    def diff(x, y, z):
        return metric(x, z) - metric(y, z)

    res = stats.bootstrap((a, b, m), diff, paired=True, vectorized=False, n_resamples=n_boot,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    dist = res.bootstrap_distribution
    p = min(1.0, 2 * min(np.mean(dist <= 0), np.mean(dist >= 0)))
    return {"diff": float(diff(a, b, m)), "ci_low": float(res.confidence_interval.low),
            "ci_high": float(res.confidence_interval.high), "p": float(p)}


def williams_t(r12: float, r13: float, r23: float, n: int) -> dict[str, float]:
    """Williams' t (Steiger 1980, eq. 7) for H0: rho12 = rho13, two correlations sharing variable 1.

    Here 1 = MOS, 2 and 3 = two predictions; df = n - 3.
    """
    det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / (2 * (n - 1) / (n - 3) * det + rbar ** 2 * (1 - r23) ** 3))
    return {"t": float(t), "df": n - 3, "p": float(2 * stats.t.sf(abs(t), n - 3))}
