import warnings

import numpy as np
import pytest
from scipy import stats

from nriqa_lib.core import metrics as M


def test_agree_with_scipy_on_random_data(rng):
    for _ in range(20):
        n = int(rng.integers(5, 300))
        p, m = rng.normal(size=n), rng.normal(size=n) + 0.3 * rng.normal(size=n)
        assert abs(M.srcc(p, m) - stats.spearmanr(p, m)[0]) < 1e-12
        assert abs(M.krcc(p, m) - stats.kendalltau(p, m)[0]) < 1e-12
        assert abs(M.plcc(p, m) - stats.pearsonr(p, m)[0]) < 1e-12


def test_hand_computed_cases():
    # rank differences (0, 1, 1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert M.srcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8, abs=1e-12)
    # 5 concordant, 1 discordant pair: (5 - 1) / 6
    assert M.krcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6, abs=1e-12)
    # cov = 3, |dx| = sqrt(2), |dy| = sqrt(42)/3  ->  9 / sqrt(84)
    assert M.plcc([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / np.sqrt(84), abs=1e-12)
    assert M.rmse([1, 2, 3], [1, 2, 5], fit=None) == pytest.approx(np.sqrt(4 / 3), abs=1e-12)
    assert M.srcc([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


def test_logistic_fit_beats_raw_on_monotone_nonlinear(rng):
    x = rng.uniform(-4, 4, 400)
    y = 1 / (1 + np.exp(-2 * x)) + 0.03 * rng.normal(size=400)
    raw = M.plcc(x, y)
    for fit in ("logistic4", "logistic5"):
        assert M.plcc(x, y, fit=fit) >= raw
        assert M.plcc(x, y, fit=fit) > 0.98
    # scale of the score does not matter (fit on z-scored prediction)
    assert M.plcc(1000 * x + 5, y, "logistic5") == pytest.approx(M.plcc(x, y, "logistic5"), abs=1e-6)
    # rank metrics ignore the fit
    assert M.srcc(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_logistic_forms_match_their_equations():
    x = np.array([-1.0, 0.0, 2.0])
    b = (3.0, 1.0, 0.5, 2.0)
    assert np.allclose(M.logistic4(x, *b), (b[0] - b[1]) / (1 + np.exp(-(x - b[2]) / abs(b[3]))) + b[1])
    c = (2.0, 1.5, 0.2, 0.1, 0.3)
    assert np.allclose(M.logistic5(x, *c), c[0] * (0.5 - 1 / (1 + np.exp(c[1] * (x - c[2])))) + c[3] * x + c[4])


def test_rmse_after_fit_is_rmse_of_fitted(rng):
    x = rng.uniform(0, 1, 200)
    y = x ** 3 + 0.01 * rng.normal(size=200)
    fitted = M.fit_logistic(x, y, "logistic5")
    assert M.rmse(x, y, "logistic5") == pytest.approx(np.sqrt(np.mean((fitted - y) ** 2)), abs=1e-12)
    assert M.rmse(x, y, "logistic5") < M.rmse(x, y, None)


def test_failed_fit_warns_and_falls_back_to_raw(monkeypatch, rng):
    def boom(*a, **k):
        raise RuntimeError("Optimal parameters not found")
    monkeypatch.setattr(M.optimize, "curve_fit", boom)
    x, y = rng.normal(size=50), rng.normal(size=50)
    with pytest.warns(M.LogisticFitWarning, match="logistic5 fit failed"):
        v = M.plcc(x, y, fit="logistic5")
    assert v == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        M.srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        M.plcc([1, 2, np.nan], [1, 2, 3])
    with pytest.raises(ValueError, match="unknown fit"):
        M.plcc([1, 2, 3, 4], [1, 2, 3, 4], fit="cubic")


def test_all_metrics_consistent(rng):
    x, y = rng.normal(size=100), rng.normal(size=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = M.all_metrics(x, y, fit="logistic4")
    assert d["srcc"] == M.srcc(x, y) and d["plcc"] == M.plcc(x, y)
    assert d["plcc_logistic4"] == pytest.approx(M.plcc(x, y, "logistic4"))


def test_vectorized_srcc_plcc_equal_scipy_per_resample():
    """srcc_along / plcc_along (scipy.stats.bootstrap's vectorized statistic) equal spearmanr / pearsonr row by
    row, ties included."""
    from scipy import stats as ss
    from nriqa_lib.core.metrics import plcc_along, srcc_along
    g = np.random.default_rng(3)
    P = np.round(g.normal(size=(50, 40)), 1)          # ties
    M = np.round(P + g.normal(size=(50, 40)), 1)
    s, p = srcc_along(P, M), plcc_along(P, M)
    for i in range(50):
        assert s[i] == pytest.approx(ss.spearmanr(P[i], M[i])[0], abs=1e-12)
        assert p[i] == pytest.approx(ss.pearsonr(P[i], M[i])[0], abs=1e-12)
