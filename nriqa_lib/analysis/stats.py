"""Statistics for every comparison (STUDY_SPEC.md section 4), scipy/statsmodels underneath.

- Across splits: :func:`summarize` (mean, sd, median, t-CI of the mean; with the split sizes given, the
  Nadeau-Bengio corrected CI, since random splits overlap).
- Two configurations on the same splits: :func:`nadeau_bengio` (corrected resampled t-test; random
  splits overlap, so the plain paired t-test is anti-conservative), :func:`wilcoxon` (signed-rank),
  :func:`compare_paired` (both + effect size), :func:`holm` over the comparisons of one table.
- One shared test set: :func:`bootstrap_ci` (resample images), :func:`williams_t` (two dependent PLCCs
  sharing the MOS), :func:`paired_bootstrap` (difference of two SRCCs sharing the MOS).
- Several trained heads (splits or seeds) all tested on the *same* target images (cross-dataset, or a
  dataset with one official split trained with several seeds): :func:`two_level_bootstrap`. The spread
  over splits alone ignores that the target images are one sample of a population; the two-level
  bootstrap resamples the heads (level 1: splits/seeds) and then the target images (level 2), paired
  across the two configurations, so its variance holds both sources.
- What a family of tests can detect: :func:`min_p_wilcoxon` (the smallest exact two-sided p with J pairs)
  and :func:`mde_nadeau_bengio` (the difference detectable with 80% power at the family's Holm threshold).
"""
from __future__ import annotations

import gc
from typing import Callable, Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = ["summarize", "nadeau_bengio", "wilcoxon", "compare_paired", "holm", "bootstrap_ci", "williams_t",
           "paired_bootstrap", "two_level_bootstrap", "min_p_wilcoxon", "mde_nadeau_bengio", "mde_normal",
           "random_effects", "splits_for_power", "nb_power", "split_cells_test",
           "bootstrap_cells_test", "bootstrap_p", "pool_datasets", "satterthwaite_df", "t_quantile", "t_sf", "tost", "mde_se",
           "tost_margin_80"]


def summarize(values: Sequence[float], level: float = 0.95, n_train: int | None = None,
              n_test: int | None = None) -> dict[str, float]:
    """Mean, sd (ddof=1), median, n and a t-interval of the mean over splits.

    With ``n_train``/``n_test`` the interval uses Nadeau & Bengio's corrected variance
    (1/J + n_test/n_train) sd^2 (random splits overlap, so sd^2/J is too small); without them the plain
    sd/sqrt(J). ``ci_kind`` says which.
    """
    v = np.asarray(values, dtype=float)
    n = v.size
    mean, sd = float(v.mean()), float(v.std(ddof=1)) if n > 1 else 0.0
    corrected = n_train is not None and n_test is not None and n_train > 0
    scale = sd * np.sqrt(1.0 / n + n_test / n_train) if corrected else sd / np.sqrt(n)
    if n > 1 and sd > 0:
        lo, hi = stats.t.interval(level, n - 1, loc=mean, scale=scale)
    else:
        lo = hi = mean
    return {"mean": mean, "sd": sd, "median": float(np.median(v)), "n": n, "ci_low": float(lo), "ci_high": float(hi),
            "ci_kind": "t, Nadeau-Bengio corrected, over splits" if corrected else "t over splits"}


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
    return {"diff": float(d.mean()), "sd_diff": float(sd), "d_z": float(d.mean() / sd) if sd > 0 else 0.0,
            "t_nb": nb["t"], "p_nb": nb["p"], "p_wilcoxon": wilcoxon(a, b)["p"]}


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down adjustment (statsmodels multipletests): (reject, adjusted p)."""
    p = np.asarray(pvalues, float)
    if p.size == 0:
        return np.zeros(0, bool), np.zeros(0)
    # statsmodels' Holm branch runs gc.collect() on every call: 0.18 s each in a process that holds
    # pandas/matplotlib objects (3.8 s of T2's analysis, cProfile). Frozen objects (gc.freeze: the permanent
    # generation) are not traversed, so the collection only sees what this call made.
    gc.freeze()
    try:
        reject, adj, _, _ = multipletests(p, alpha=alpha, method="holm")
    finally:
        gc.unfreeze()
    return reject, adj


def bootstrap_ci(pred: Sequence[float], mos: Sequence[float], metric: Callable[[np.ndarray, np.ndarray], float],
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0, vectorized: bool = False) -> dict[str, float]:
    """Percentile bootstrap CI of ``metric(pred, mos)`` resampling images (scipy.stats.bootstrap, paired).
    ``vectorized``: ``metric`` takes ``axis`` and scores every resample in one call (metrics.srcc_along,
    plcc_along: ~30x faster than one call per resample; same resamples, the CI equal up to float rounding)."""
    p, m = np.asarray(pred, float), np.asarray(mos, float)
    res = stats.bootstrap((p, m), metric, paired=True, vectorized=vectorized, n_resamples=n_boot,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return {"value": float(metric(p, m)), "ci_low": float(res.confidence_interval.low),
            "ci_high": float(res.confidence_interval.high)}


def paired_bootstrap(pred_a: Sequence[float], pred_b: Sequence[float], mos: Sequence[float],
                     metric: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0, vectorized: bool = False) -> dict[str, float]:
    """metric(a) - metric(b) on one test set, images resampled jointly; CI, se, two-sided :func:`bootstrap_p`
    (``p_below``: no replicate on one side, p < 1/n_boot) and the replicates (``dist``, for pooling cells that
    share the resamples). ``vectorized`` as in :func:`bootstrap_ci`."""
    a, b, m = (np.asarray(x, float) for x in (pred_a, pred_b, mos))

    def diff(x, y, z, **axis):
        if axis:     # vectorized: a and b scored in one call on one stacked array, so identical a and b give
            ab = np.stack(np.broadcast_arrays(x, y))           # the same value and a difference of exactly 0
            s = metric(ab, np.broadcast_to(z, ab.shape), **axis)
            return s[0] - s[1]
        return metric(x, z) - metric(y, z)

    res = stats.bootstrap((a, b, m), diff, paired=True, vectorized=vectorized, n_resamples=n_boot,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    dist = res.bootstrap_distribution
    p, below = bootstrap_p(dist)
    return {"diff": float(diff(a, b, m)), "ci_low": float(res.confidence_interval.low),
            "ci_high": float(res.confidence_interval.high), "p": p, "p_below": below, "se": float(res.standard_error),
            "dist": dist}


def williams_t(r12: float, r13: float, r23: float, n: int) -> dict[str, float]:
    """Williams' t (Steiger 1980, eq. 7) for H0: rho12 = rho13, two correlations sharing variable 1.

    Here 1 = MOS, 2 and 3 = two predictions; df = n - 3.
    """
    det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / (2 * (n - 1) / (n - 3) * det + rbar ** 2 * (1 - r23) ** 3))
    return {"t": float(t), "df": n - 3, "p": float(2 * stats.t.sf(abs(t), n - 3))}


class _ResampleRanks:
    """Average ranks of every row of P (K, N) within a bootstrap resample given as counts per image.

    Why not scipy.stats.rankdata on each resample: a two-level bootstrap needs J x n_boot rankings of
    thousands of images; with the sort order of the full sample fixed, the resample's average ranks follow
    from cumulative counts per tie group in O(N), about 10x faster, and equal to ranking the expanded
    resample (tests/analysis/test_stats.py checks this against scipy.stats.spearmanr on explicit resamples).
    """

    def __init__(self, P: np.ndarray):
        self.K, self.N = P.shape
        self.order = np.argsort(P, axis=1, kind="stable")
        Ps = np.take_along_axis(P, self.order, 1)
        new = np.ones(Ps.shape, bool)
        new[:, 1:] = Ps[:, 1:] != Ps[:, :-1]
        self.gid = ((np.cumsum(new, axis=1) - 1) + np.arange(self.K)[:, None] * self.N).ravel()
        # flat positions that undo the sort (a gather: faster than np.put_along_axis, the same values)
        self.unsort = (np.argsort(self.order, axis=1, kind="stable") + np.arange(self.K)[:, None] * self.N).ravel()

    def ranks(self, counts: np.ndarray) -> np.ndarray:
        cs = counts[self.order].ravel()
        gs = np.bincount(self.gid, weights=cs, minlength=self.K * self.N).reshape(self.K, self.N)
        before = (np.cumsum(gs, axis=1) - gs).ravel()
        r_sorted = before[self.gid] + (gs.ravel()[self.gid] + 1) / 2
        return r_sorted[self.unsort].reshape(self.K, self.N)


def _weighted_corr(R: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of R with q, observations weighted by integer counts w.

    Row sums are elementwise products reduced with ``sum(axis=1)``, not BLAS matrix-vector products: a BLAS
    kernel may sum identical rows in different orders (by row position, alignment or the CPU's kernel:
    OpenBLAS SkylakeX vs Haswell), so two identical prediction rows could get correlations that differ in the
    last bit. numpy's reduction treats each row alike, so identical rows give identical correlations.
    """
    n = w.sum()
    Rc = R - ((R * w).sum(axis=1) / n)[:, None]
    qc = q - (q * w).sum() / n
    den = np.sqrt(((Rc * Rc) * w).sum(axis=1) * ((qc * qc) * w).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, ((Rc * (qc * w)).sum(axis=1)) / den, 0.0)


def two_level_bootstrap(pred_a: np.ndarray, mos: Sequence[float], pred_b: np.ndarray | None = None,
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                        head_inflation: float = 1.0, absolute: bool = False) -> dict[str, float]:
    """Mean SRCC over J heads tested on the same N target images (``pred_a``: (J, N)), or the paired
    difference mean SRCC(a) - mean SRCC(b), with a two-level percentile bootstrap.

    Each replicate draws J heads with replacement (level 1: splits or training seeds; the same draw for a
    and b) and N target images with replacement (level 2; the same images for every head and for a and b),
    and averages the per-head SRCCs. Returns the estimate, the percentile CI, the bootstrap standard error
    and, for a difference, the two-sided :func:`bootstrap_p`; ``dist``: the replicates (the same seed, J and N
    give the same resamples, so cells can be pooled by averaging them: :func:`bootstrap_cells_test`).

    ``head_inflation`` c scales the head-level variance: each replicate's statistic is the image-level mean
    over all J heads plus sqrt(c) times the deviation of the resampled heads' mean from it. Heads trained on
    overlapping training sets (the splits of one source dataset) are not independent draws, the same reason
    the Nadeau-Bengio test exists, so the cross-dataset tables use c = 1 + J n_test/n_train (its variance
    factor (1/J + n_test/n_train) over the plain 1/J); seeds on one partition use c = 1.

    ``absolute``: |SRCC| per head before the mean (or the difference): how strongly a score orders the images,
    either sign (T4's absolute companion of the magnitude cue). ``se_images``: the standard error of the same
    replicates with the heads held at equal weights (the images' share of the variance, from the same pass).
    """
    A = np.atleast_2d(np.asarray(pred_a, float))
    J, N = A.shape
    y = np.asarray(mos, float)
    if pred_b is not None:
        B = np.atleast_2d(np.asarray(pred_b, float))
        if B.shape != A.shape:
            raise ValueError(f"pred_a and pred_b differ in shape: {A.shape} vs {B.shape}")
        A = np.vstack([A, B])
    if y.shape != (N,):
        raise ValueError(f"mos has {y.size} values for {N} target images")
    rp, ry = _ResampleRanks(A), _ResampleRanks(y[None])
    paired = len(A) > J
    k = np.sqrt(float(head_inflation))
    equal = np.full(J, 1.0 / J)

    def stat(counts, heads):
        rho = _weighted_corr(rp.ranks(counts), ry.ranks(counts)[0], counts)
        if absolute:
            rho = np.abs(rho)
        # per-head differences first, then the weighted mean: identical a and b give exactly 0 on any CPU
        d = rho[:J] - rho[J:] if paired else rho
        base = float((equal * d).sum())         # the heads at equal weights: only the images resampled
        if k == 1.0:
            return float((heads * d).sum()), base
        return float(base + k * ((heads * d).sum() - base)), base

    est = stat(np.ones(N), equal)[0]
    rng = np.random.default_rng(seed)
    dist, dist_images = np.empty(n_boot), np.empty(n_boot)
    for r in range(n_boot):
        heads = np.bincount(rng.integers(0, J, J), minlength=J) / J
        counts = np.bincount(rng.integers(0, N, N), minlength=N).astype(float)
        dist[r], dist_images[r] = stat(counts, heads)
    a = (1 - level) / 2
    out = {"value": est, "ci_low": float(np.quantile(dist, a)), "ci_high": float(np.quantile(dist, 1 - a)),
           "se": float(dist.std(ddof=1)), "se_images": float(dist_images.std(ddof=1))}
    if pred_b is not None:
        out["p"], out["p_below"] = bootstrap_p(dist)
    out["dist"] = dist
    return out


def min_p_wilcoxon(n_pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with ``n_pairs`` non-zero
    differences: 2 / 2^J (every difference of one sign). J = 10 gives 0.00195, J = 3 gives 0.25."""
    return float(min(1.0, 2.0 / 2 ** int(n_pairs)))


def mde_nadeau_bengio(sd_diff: float, n_splits: int, n_train: int, n_test: int, alpha: float,
                      power: float = 0.8) -> float:
    """Smallest true mean difference the Nadeau-Bengio test detects with ``power`` at level ``alpha``.

    Its t = mean(d) / (sd sqrt(1/J + n_test/n_train)) is a one-sample t whose effective effect size is
    delta / (sd sqrt(1 + J n_test/n_train)); statsmodels' TTestPower solves for that effect size with
    nobs = J, and it is scaled back to SRCC units.
    """
    from statsmodels.stats.power import TTestPower
    if n_splits < 2 or not np.isfinite(sd_diff):
        return float("nan")
    es = TTestPower().solve_power(effect_size=None, nobs=n_splits, alpha=alpha, power=power,
                                  alternative="two-sided")
    return float(es * sd_diff * np.sqrt(1 + n_splits * n_test / n_train))


def mde_normal(se: float, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided z-type (bootstrap) test with standard error ``se`` detects with
    ``power`` at level ``alpha``: (z_{1-alpha/2} + z_{power}) se."""
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def random_effects(effects: Sequence[float], ses: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Random-effects pooling of k independent cells (effects y with standard errors ``ses``): DerSimonian &
    Laird's (1986) tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w)), w = 1/se^2, Q = sum w (y - y_fe)^2,
    estimate = sum w* y / sum w* with w* = 1/(se^2 + tau^2), and the Hartung-Knapp (2001) / Sidik-Jonkman
    variance sum w* (y - est)^2 / ((k - 1) sum w*) with a t reference on k - 1 df: a normal z with the DL
    variance rejects too often when k is small and the cell variances are estimated (IntHout et al. 2014).
    Equals statsmodels' ``combine_effects(method_re="dl", use_t=True)`` "random effect wls" row (tested).
    The cells must be independent (different datasets). The study's pooled verdicts use :func:`pool_datasets`
    (this function's tau^2, I^2 and Q describe their heterogeneity). I^2 = max(0, (Q-(k-1))/Q);
    k = 1 has no heterogeneity (tau^2, I^2, Q: nan) and returns the cell with a normal reference."""
    y, v = np.asarray(effects, float), np.asarray(ses, float) ** 2
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    y, v = y[ok], v[ok]
    k = int(y.size)
    nan = float("nan")
    if k == 0:
        return {"k": 0, "estimate": nan, "se": nan, "ci_low": nan, "ci_high": nan, "t": nan, "df": nan, "p": nan,
                "tau2": nan, "i2": nan, "q": nan, "se_dl": nan}
    if k == 1:
        zc = stats.norm.ppf(0.5 + level / 2)
        est, se = float(y[0]), float(np.sqrt(v[0]))
        return {"k": 1, "estimate": est, "se": se, "ci_low": est - zc * se, "ci_high": est + zc * se,
                "t": est / se, "df": float("inf"), "p": float(2 * stats.norm.sf(abs(est / se))), "tau2": nan,
                "i2": nan, "q": nan, "se_dl": se}
    w = 1 / v
    fe = float((w * y).sum() / w.sum())
    q = float((w * (y - fe) ** 2).sum())
    c = float(w.sum() - (w ** 2).sum() / w.sum())
    tau2 = max(0.0, (q - (k - 1)) / c) if c > 0 else 0.0
    wr = 1 / (v + tau2)
    est = float((wr * y).sum() / wr.sum())
    se = float(np.sqrt((wr * (y - est) ** 2).sum() / ((k - 1) * wr.sum())))
    df = k - 1
    tc = stats.t.ppf(0.5 + level / 2, df)
    t = est / se if se > 0 else (0.0 if est == 0 else np.sign(est) * np.inf)
    return {"k": k, "estimate": est, "se": se, "ci_low": est - tc * se, "ci_high": est + tc * se, "t": float(t),
            "df": float(df), "p": float(2 * stats.t.sf(abs(t), df)), "tau2": float(tau2),
            "i2": float(max(0.0, (q - (k - 1)) / q)) if q > 0 else 0.0, "q": q,
            "se_dl": float(np.sqrt(1 / wr.sum()))}


def split_cells_test(diffs: np.ndarray, n_train: float, n_test: float, level: float = 0.95) -> dict:
    """One Nadeau-Bengio test for several cells of one dataset evaluated on the same J splits: ``diffs`` (k, J)
    per-split differences are averaged over the k cells first, then the corrected t runs on the J averages
    (:func:`nadeau_bengio`'s formula). Cells on the same splits are correlated (same test images; their
    correlation is unknown and badly estimated from 10 splits); averaging first needs no estimate of it, and
    with k = 1 this is that cell's own test. Leading dimensions (..., k, J) are batches (simulations); values
    are then arrays."""
    D = np.asarray(diffs, float)
    d = (D if D.ndim == 1 else D.mean(axis=-2))
    J = d.shape[-1]
    if J < 2:
        raise ValueError("need at least 2 paired splits")
    est = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1)
    se = sd * np.sqrt(1.0 / J + n_test / n_train)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, est / np.where(se > 0, se, 1.0), np.where(est == 0, 0.0, np.sign(est) * np.inf))
    p = 2 * stats.t.sf(np.abs(t), J - 1)
    tc = stats.t.ppf(0.5 + level / 2, J - 1)
    out = {"estimate": est, "se": se, "ci_low": est - tc * se, "ci_high": est + tc * se, "t": t, "df": J - 1.0,
           "p": p, "sd_diff": sd, "n_splits": J}
    return {k: (float(v) if np.ndim(v) == 0 and k != "n_splits" else v) for k, v in out.items()}


def pool_datasets(estimates: Sequence[float], ses: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Pooled effect of a claim over k independent datasets: the unweighted mean of the datasets' effects with
    a one-sample t over datasets (k - 1 df), the summary-statistics random-effects test (the population of
    datasets is the unit; valid for any between-dataset variance tau^2). Why not inverse-variance weights with
    Hartung-Knapp (:func:`random_effects`): the datasets' standard errors are themselves estimated from ~10
    splits, and that test rejected 5.9-6.6% of true nulls at 5% for k = 3-6 in our simulation (unweighted t:
    3.9-5.3%; tests/analysis/test_pooled.py). DerSimonian-Laird's tau^2, I^2 and Q from ``ses`` describe the
    heterogeneity. k = 1: that dataset's effect and se, no heterogeneity (nan), p from its own test upstream."""
    y = np.asarray(estimates, float)
    k = y.size
    re = random_effects(y, ses, level)
    if k < 2:
        return {**re, "estimate_ivw": re["estimate"]}
    est = float(y.mean())
    se = float(y.std(ddof=1) / np.sqrt(k))
    tc = stats.t.ppf(0.5 + level / 2, k - 1)
    t = est / se if se > 0 else (0.0 if est == 0 else float(np.sign(est) * np.inf))
    return {"k": k, "estimate": est, "se": se, "ci_low": est - tc * se, "ci_high": est + tc * se, "t": float(t),
            "df": float(k - 1), "p": float(2 * stats.t.sf(abs(t), k - 1)), "tau2": re["tau2"], "i2": re["i2"],
            "q": re["q"], "estimate_ivw": re["estimate"]}


def bootstrap_p(dist: np.ndarray) -> tuple[float, bool]:
    """Two-sided bootstrap p = 2 min(P*(d <= 0), P*(d >= 0)) and whether it is only a bound: no replicate on
    one side gives p < 1/n_boot (the method's resolution), returned as 1/n_boot with ``True``."""
    dist = np.asarray(dist, float)
    n = dist.size
    p = min(1.0, 2 * min(np.mean(dist <= 0), np.mean(dist >= 0)))
    return (1.0 / n, True) if p == 0 else (float(p), False)


def bootstrap_cells_test(dists: np.ndarray, estimates: Sequence[float], level: float = 0.95,
                         df: float = float("inf")) -> dict[str, float]:
    """One bootstrap test for k cells of one dataset whose replicates came from the same resamples (same seed,
    images and heads): the replicates are averaged over cells, which carries every correlation between the
    cells (shared images, a shared reference); then the normal bootstrap: se = sd of the averaged replicates,
    z = estimate / se, p = 2 Phi(-|z|), CI = estimate -+ z_{(1+level)/2} se (Efron & Tibshirani 1993, sec. 13.2).
    Why not the replicates' exceedance p and percentile CI: with no replicate beyond 0 the exceedance p is only
    "< 1/n_boot" (rule of three: a 95% bound of ~3/n_boot, x m after a family adjustment), and a percentile CI
    need not agree with it; the normal p and CI come from one statistic, so the CI at 1 - a excludes 0 exactly
    when p < a, at every level (issue 39). ``df`` finite: the replicates resampled few units at a level (K random
    initialisations: :func:`satterthwaite_df`), so z is referred to Student's t on ``df`` instead."""
    D = np.atleast_2d(np.asarray(dists, float))
    avg = D.mean(axis=0)
    est = float(np.mean(estimates))
    se = float(avg.std(ddof=1))
    z = est / se if se > 0 else (0.0 if est == 0 else float(np.sign(est) * np.inf))
    zc = t_quantile(0.5 + level / 2, df)
    return {"estimate": est, "se": se, "ci_low": est - zc * se, "ci_high": est + zc * se, "t": float(z),
            "df": float(df), "p": 2 * t_sf(abs(z), df), "p_below": False, "n_boot": int(avg.size)}


def satterthwaite_df(var_total: float, var_images: float, n_units: int) -> float:
    """Degrees of freedom of a two-level bootstrap variance whose upper level has ``n_units`` units (K random
    initialisations): var_total = var_images + var_units, the images' part on many units (df ~ inf) and the
    units' part on n_units - 1, so Welch-Satterthwaite gives df = var_total^2 / (var_units^2 / (n_units - 1))
    (inf when the units add no variance). Why: with K = 5 inits a normal reference rejected 9.75% of true nulls
    in our simulation (400 runs) when the inits' spread dominated; on this df 5.5%, and 1.7% with no spread
    between inits (tests/analysis/test_stats.py)."""
    var_units = max(float(var_total) - float(var_images), 0.0)
    if n_units < 2 or var_units == 0:
        return float("inf")
    return float(var_total) ** 2 / (var_units ** 2 / (n_units - 1))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom; df = inf: the normal's (a bootstrap
    row's z)."""
    return float(stats.norm.ppf(q) if not np.isfinite(df) else stats.t.ppf(q, df))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with ``df`` (inf: normal)."""
    return float(stats.norm.sf(x) if not np.isfinite(df) else stats.t.sf(x, df))


def tost(estimate: float, se: float, df: float, margin: float) -> float:
    """Two one-sided tests (Schuirmann 1987) of H0: |delta| >= ``margin`` against equivalence |delta| < margin,
    for an estimate with standard error ``se`` on ``df`` degrees of freedom (inf: normal): p = max of the two
    one-sided p-values. Equivalence at level a is shown exactly when the (1 - 2a) interval estimate -+
    t_{1-a} se lies inside (-margin, margin)."""
    if not (se > 0):
        return 0.0 if abs(estimate) < margin else 1.0
    return max(t_sf((estimate + margin) / se, df), t_sf((margin - estimate) / se, df))


def mde_se(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided t test (estimate / ``se`` on ``df`` degrees of freedom) detects with
    ``power`` at level ``alpha``. df finite: statsmodels' TTestPower solved for the effect size with nobs = df + 1,
    times se sqrt(nobs) (a one-sample t with n = df + 1 observations has se = sd / sqrt(n); for a Nadeau-Bengio
    row this equals :func:`mde_nadeau_bengio`); df = inf: :func:`mde_normal`."""
    from statsmodels.stats.power import TTestPower
    if not (np.isfinite(se) and se > 0):
        return float("nan")
    if not np.isfinite(df):
        return mde_normal(se, alpha, power)
    n = df + 1
    es = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(es * se * np.sqrt(n))


def tost_margin_80(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """The equivalence margin TOST at level ``alpha`` shows with ``power`` when the true difference is 0:
    (t_{1-alpha} + t_{(1+power)/2}) se, the usual normal-theory approximation (each one-sided test then has power
    (1+power)/2)."""
    if not (np.isfinite(se) and se > 0):
        return float("nan")
    return float((t_quantile(1 - alpha, df) + t_quantile((1 + power) / 2, df)) * se)


def nb_power(delta: float, sd_diff: float, n_splits: int, n_train: int, n_test: int, alpha: float) -> float:
    """Power of the two-sided Nadeau-Bengio test with J = ``n_splits`` against a true difference ``delta``:
    statsmodels' TTestPower with the corrected effect size delta / (sd sqrt(1 + J n_test/n_train))."""
    from statsmodels.stats.power import TTestPower
    es = abs(delta) / (sd_diff * np.sqrt(1 + n_splits * n_test / n_train))
    return float(TTestPower().power(effect_size=es, nobs=n_splits, alpha=alpha, alternative="two-sided"))


def splits_for_power(delta: float, sd_diff: float, n_train: int, n_test: int, alpha: float, power: float = 0.8,
                     max_splits: int = 1000) -> float:
    """Smallest number of splits J at which the Nadeau-Bengio test detects a true difference ``delta`` with
    ``power`` at level ``alpha`` (statsmodels' TTestPower with the corrected effect size, as
    :func:`mde_nadeau_bengio`); inf when even ``max_splits`` do not (the correction's n_test/n_train term
    keeps the variance from shrinking below sd^2 n_test/n_train however many splits there are)."""
    if not (np.isfinite(delta) and np.isfinite(sd_diff)) or sd_diff <= 0 or delta == 0:
        return float("nan") if not np.isfinite(delta) or not np.isfinite(sd_diff) else float("inf")

    def pw(J: int) -> float:
        return nb_power(delta, sd_diff, J, n_train, n_test, alpha)

    if pw(max_splits) < power:
        return float("inf")
    lo, hi = 2, max_splits                     # power grows with J: bisect for the first J that reaches it
    if pw(lo) >= power:
        return float(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pw(mid) < power else (lo, mid)
    return float(hi)
