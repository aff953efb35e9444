import numpy as np
import pytest
from scipy import stats as S

from nriqa_lib import stats
from nriqa_lib.metrics import plcc, srcc


def test_summarize_by_hand():
    s = stats.summarize([0.5, 0.7, 0.6, 0.8])
    assert s["mean"] == pytest.approx(0.65) and s["median"] == pytest.approx(0.65)
    assert s["sd"] == pytest.approx(np.sqrt(((0.15 ** 2) * 2 + (0.05 ** 2) * 2) / 3))
    half = S.t.ppf(0.975, 3) * s["sd"] / 2
    assert s["ci_low"] == pytest.approx(0.65 - half) and s["ci_high"] == pytest.approx(0.65 + half)


def test_nadeau_bengio_by_hand():
    a = np.array([0.80, 0.82, 0.78, 0.85, 0.81])
    b = np.array([0.79, 0.80, 0.78, 0.82, 0.80])
    d = a - b
    t = d.mean() / np.sqrt((1 / 5 + 20 / 80) * d.var(ddof=1))
    r = stats.nadeau_bengio(a, b, n_train=80, n_test=20)
    assert r["t"] == pytest.approx(t) and r["df"] == 4
    assert r["p"] == pytest.approx(2 * S.t.sf(abs(t), 4))
    # the correction only ever widens the plain paired t-test
    assert r["p"] > S.ttest_rel(a, b).pvalue


def _null_simulation(n_sims=300, n=80, J=10, seed=0):
    """Two predictors with the same true quality, evaluated on J overlapping random 80/20 splits."""
    rng = np.random.default_rng(seed)
    p_nb, p_t = [], []
    for _ in range(n_sims):
        y = rng.normal(size=n)
        a, b = y + rng.normal(size=n), y + rng.normal(size=n)
        sa, sb = [], []
        for _ in range(J):
            te = rng.permutation(n)[: n // 5]
            sa.append(srcc(a[te], y[te]))
            sb.append(srcc(b[te], y[te]))
        p_nb.append(stats.nadeau_bengio(sa, sb, n - n // 5, n // 5)["p"])
        p_t.append(S.ttest_rel(sa, sb).pvalue)
    return np.mean(np.array(p_nb) < 0.05), np.mean(np.array(p_t) < 0.05)


def test_nadeau_bengio_false_positive_rate_under_null():
    fpr_nb, fpr_t = _null_simulation()
    assert fpr_nb <= 0.08          # near or below alpha
    assert fpr_t >= fpr_nb         # the uncorrected test is anti-conservative


def test_wilcoxon_matches_scipy(rng):
    a, b = rng.normal(size=10), rng.normal(size=10)
    assert stats.wilcoxon(a, b)["p"] == pytest.approx(S.wilcoxon(a - b).pvalue)
    assert stats.wilcoxon(a, a)["p"] == 1.0


def test_holm_by_hand():
    rej, adj = stats.holm([0.01, 0.04, 0.03])
    assert np.allclose(adj, [0.03, 0.06, 0.06])
    assert rej.tolist() == [True, False, False]


def test_compare_paired_effect_size():
    a, b = np.array([0.7, 0.72, 0.69, 0.75]), np.array([0.6, 0.65, 0.61, 0.66])
    r = stats.compare_paired(a, b, 80, 20)
    d = a - b
    assert r["diff"] == pytest.approx(d.mean()) and r["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))


def test_williams_t_by_formula_and_null_rate():
    r12, r13, r23, n = 0.6, 0.45, 0.5, 100
    det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / (2 * (n - 1) / (n - 3) * det + ((r12 + r13) / 2) ** 2 * (1 - r23) ** 3))
    w = stats.williams_t(r12, r13, r23, n)
    assert w["t"] == pytest.approx(t) and w["df"] == 97
    # under H0 (two predictions equally correlated with the MOS) the rejection rate is near alpha
    rng = np.random.default_rng(1)
    rej = []
    for _ in range(400):
        y = rng.normal(size=n)
        common = rng.normal(size=n)
        a = y + common + rng.normal(size=n)
        b = y + common + rng.normal(size=n)
        rej.append(stats.williams_t(plcc(a, y), plcc(b, y), plcc(a, b), n)["p"] < 0.05)
    assert 0.01 <= np.mean(rej) <= 0.09


def test_bootstrap_ci_and_paired_bootstrap(rng):
    y = rng.normal(size=300)
    good, bad = y + 0.5 * rng.normal(size=300), y + 2.0 * rng.normal(size=300)
    ci = stats.bootstrap_ci(good, y, srcc, n_boot=300, seed=0)
    assert ci["ci_low"] < ci["value"] < ci["ci_high"] and ci["ci_high"] - ci["ci_low"] < 0.1
    again = stats.bootstrap_ci(good, y, srcc, n_boot=300, seed=0)
    assert again == ci                                    # seeded -> identical
    pb = stats.paired_bootstrap(good, bad, y, srcc, n_boot=300, seed=0)
    assert pb["diff"] > 0 and pb["ci_low"] > 0 and pb["p"] < 0.01
    same = stats.paired_bootstrap(good, good, y, srcc, n_boot=100, seed=0)
    assert same["diff"] == 0 and same["p"] == 1.0
