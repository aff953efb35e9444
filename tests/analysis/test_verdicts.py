"""The statistics behind a findings row's verdict (issue 39): TOST, the MDE at the verdict's own level, the normal
bootstrap of pooled bootstrap cells; checked against statsmodels/scipy and by simulation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nriqa_lib.analysis.stats import (bootstrap_cells_test, mde_nadeau_bengio, mde_normal, mde_se, nb_power,
                                      split_cells_test, t_quantile, tost, tost_margin_80)


def test_tost_equals_statsmodels_paired_tost(rng):
    """One-sample data: TOST on (mean, sd/sqrt(n), n - 1) is statsmodels' ttost_paired against zeros."""
    from statsmodels.stats.weightstats import ttost_paired
    for delta in (0.0, 0.01, 0.03):
        x = rng.normal(delta, 0.02, 10)
        ref = ttost_paired(x, np.zeros_like(x), -0.02, 0.02)[0]
        ours = tost(x.mean(), x.std(ddof=1) / np.sqrt(x.size), x.size - 1, 0.02)
        assert ours == pytest.approx(ref, rel=1e-10)


def test_tost_agrees_with_its_interval_at_every_level(rng):
    """Equivalence at level a is shown exactly when the (1 - 2a) interval lies inside the margin."""
    for _ in range(500):
        est, se, df, margin = rng.normal(0, 0.03), rng.uniform(0.002, 0.03), rng.choice([4, 9, np.inf]), 0.02
        a = rng.choice([0.05, 0.05 / 7, 0.05 / 18])
        q = t_quantile(1 - a, df)
        inside = (est - q * se > -margin) and (est + q * se < margin)
        assert inside == (tost(est, se, df, margin) < a)


def test_mde_at_a_level_is_the_nadeau_bengio_mde_and_has_its_power():
    """mde_se with a Nadeau-Bengio row's se and df equals mde_nadeau_bengio, and nb_power at it is 80%; df = inf is
    the normal MDE."""
    sd, J, ntr, nte = 0.025, 10, 813, 233
    se = sd * np.sqrt(1 / J + nte / ntr)
    for a in (0.05, 0.05 / 7, 0.05 / 18):
        m = mde_se(se, J - 1, a)
        assert m == pytest.approx(mde_nadeau_bengio(sd, J, ntr, nte, a), rel=1e-9)
        assert nb_power(m, sd, J, ntr, nte, a) == pytest.approx(0.8, abs=1e-4)     # the solver's tolerance
    assert mde_se(0.01, np.inf, 0.01) == pytest.approx(mde_normal(0.01, 0.01))
    assert mde_se(0.01, 9, 0.05 / 7) > mde_se(0.01, 9, 0.05)               # a stricter level needs a larger effect


def test_tost_margin_80_has_80_percent_power_by_simulation(rng):
    """At a true difference of 0, TOST at level a with the margin tost_margin_80 shows equivalence in ~80% of
    simulated estimates (normal df; 20,000 draws: se of the rate 0.003). The approximation is conservative:
    each one-sided test has power 0.9, so the joint power is at least 0.8."""
    se, a = 0.01, 0.05 / 7
    margin = tost_margin_80(se, np.inf, a)
    est = rng.normal(0, se, 20000)
    power = np.mean([tost(e, se, np.inf, margin) < a for e in est])
    assert 0.79 <= power <= 0.83


def test_the_normal_bootstrap_p_and_interval_agree(rng):
    """Pooled bootstrap cells: p = 2 Phi(-|est / se|) and the interval at 1 - a excludes 0 exactly when p < a, at
    every level (the exceedance p with no replicate beyond 0 was only '< 1/n_boot')."""
    for _ in range(200):
        est = rng.normal(0, 0.05)
        d = est + rng.normal(0, rng.uniform(0.005, 0.05), (2, 400))
        r = bootstrap_cells_test(d, [est, est])
        assert r["p"] == pytest.approx(2 * stats.norm.sf(abs(est / r["se"])), rel=1e-12)
        for a in (0.05, 0.05 / 7):
            lo, hi = bootstrap_cells_test(d, [est, est], level=1 - a)["ci_low"], bootstrap_cells_test(
                d, [est, est], level=1 - a)["ci_high"]
            assert (lo > 0 or hi < 0) == (r["p"] < a)
    far = bootstrap_cells_test(np.full((1, 1000), -0.25) + rng.normal(0, 0.04, (1, 1000)), [-0.25])
    assert 0 < far["p"] < 1e-6 and not far["p_below"]              # certified, not "< 1/n_boot"


def test_split_cells_interval_agrees_with_its_p_at_every_level(rng):
    """The Nadeau-Bengio row: its t interval at 1 - a excludes 0 exactly when p < a (what the findings' adjusted
    interval relies on)."""
    for _ in range(300):
        D = rng.normal(rng.normal(0, 0.02), 0.02, (3, 10))
        r = split_cells_test(D, 813, 233)
        for a in (0.05, 0.05 / 7, 0.05 / 18):
            q = t_quantile(1 - a / 2, r["df"])
            assert ((r["estimate"] - q * r["se"] > 0) or (r["estimate"] + q * r["se"] < 0)) == (r["p"] < a)
