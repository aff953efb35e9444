"""IQA agreement metrics: SRCC, KRCC, PLCC (raw / 4- / 5-parameter logistic), RMSE.

Plain numpy in, float out (the pyiqa habit). STUDY_SPEC.md section 4.
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from scipy import optimize, stats

Fit = Literal["logistic4", "logistic5"] | None

__all__ = ["srcc", "selection_srcc", "krcc", "plcc", "rmse", "fit_logistic", "logistic4", "logistic5", "all_metrics",
           "LogisticFitWarning"]


class LogisticFitWarning(UserWarning):
    """A logistic fit failed; the raw (unfitted) prediction was used instead."""


def _pair(pred, mos) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    m = np.asarray(mos, dtype=np.float64)
    if p.ndim != 1 or m.ndim != 1:
        raise ValueError(f"pred and mos must be 1-D arrays, got shapes {p.shape} and {m.shape}")
    if p.shape != m.shape:
        raise ValueError(f"pred and mos differ in length: {p.shape[0]} vs {m.shape[0]}")
    if p.size < 3:
        raise ValueError(f"need at least 3 pairs, got {p.size}")
    if not (np.isfinite(p).all() and np.isfinite(m).all()):
        raise ValueError("pred and mos must be finite (found NaN or inf)")
    return p, m


def logistic4(x, b1, b2, b3, b4):
    """VQEG (2000) 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / (np.abs(b4) + 1e-12))) + b2


def logistic5(x, b1, b2, b3, b4, b5):
    """Sheikh et al. (TIP 2006) 5-parameter logistic: b1 (1/2 - 1/(1 + exp(b2 (x - b3)))) + b4 x + b5."""
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def fit_logistic(pred, mos, kind: Literal["logistic4", "logistic5"]) -> np.ndarray:
    """Map ``pred`` onto the MOS scale with the chosen logistic; on failure warn and return ``pred``."""
    p0_, m = _pair(pred, mos)
    # Fit on the z-scored prediction: both logistic families are closed under affine maps of x, so the
    # fitted curve is the same, and the optimiser no longer depends on the score's scale (e.g. L2 norms ~30).
    sd = p0_.std() or 1.0
    p = (p0_ - p0_.mean()) / sd
    if kind == "logistic4":
        f = logistic4
        sign = 1.0 if stats.spearmanr(p, m)[0] >= 0 else -1.0
        p0 = [m.max(), m.min(), 0.0, sign]
    elif kind == "logistic5":
        f = logistic5
        # sign of the slope from the rank correlation so the fit starts on the right branch
        sign = 1.0 if stats.spearmanr(p, m)[0] >= 0 else -1.0
        p0 = [sign * (m.max() - m.min()), 1.0, 0.0, 0.0, np.mean(m)]
    else:
        raise ValueError(f"unknown fit {kind!r}; use None, 'logistic4' or 'logistic5'")
    try:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(f, p, m, p0=p0, maxfev=20000)
            out = f(p, *params)                  # exp may overflow to inf in a saturated tail: still finite
        if not np.isfinite(out).all():
            raise RuntimeError("non-finite fitted values")
        return out
    except (RuntimeError, ValueError) as e:
        warnings.warn(f"{kind} fit failed ({e}); using the raw prediction", LogisticFitWarning, stacklevel=2)
        return p0_


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation (scipy.stats.spearmanr)."""
    p, m = _pair(pred, mos)
    return float(stats.spearmanr(p, m)[0])


def selection_srcc(pred: np.ndarray, mos: np.ndarray) -> float:
    """The SRCC an epoch is selected on (P1: the best epoch by SRCC): scipy.stats.spearmanr, and -inf where it is
    undefined (fewer than 3 images, or constant predictions), so that such an epoch is never kept."""
    if len(mos) < 3 or np.ptp(pred) == 0:
        return -np.inf
    return float(stats.spearmanr(pred, mos)[0])


def srcc_along(pred: np.ndarray, mos: np.ndarray, axis: int = -1) -> np.ndarray:
    """SRCC of many resamples at once (scipy.stats.bootstrap's ``vectorized`` form): average ranks along
    ``axis`` (scipy.stats.rankdata), then Pearson of the ranks (scipy.stats.pearsonr with ``axis``), which is
    what spearmanr computes for one pair; equal to :func:`srcc` up to float rounding (tested)."""
    return stats.pearsonr(stats.rankdata(pred, axis=axis), stats.rankdata(mos, axis=axis), axis=axis).statistic


def plcc_along(pred: np.ndarray, mos: np.ndarray, axis: int = -1) -> np.ndarray:
    """Raw PLCC of many resamples at once (scipy.stats.pearsonr with ``axis``)."""
    return stats.pearsonr(pred, mos, axis=axis).statistic


def krcc(pred, mos) -> float:
    """Kendall rank correlation, tau-b (scipy.stats.kendalltau)."""
    p, m = _pair(pred, mos)
    return float(stats.kendalltau(p, m)[0])


def plcc(pred, mos, fit: Fit = None) -> float:
    """Pearson linear correlation, raw (``fit=None``) or after a logistic fit onto the MOS."""
    p, m = _pair(pred, mos)
    if fit is not None:
        p = fit_logistic(p, m, fit)
    return float(stats.pearsonr(p, m)[0])


def rmse(pred, mos, fit: Fit = "logistic5") -> float:
    """Root-mean-square error between MOS and the (fitted) prediction."""
    p, m = _pair(pred, mos)
    if fit is not None:
        p = fit_logistic(p, m, fit)
    return float(np.sqrt(np.mean((p - m) ** 2)))


def all_metrics(pred, mos, fit: Fit = "logistic5") -> dict[str, float]:
    """SRCC, KRCC, raw PLCC, the fitted PLCC (if ``fit``) and RMSE after the fit, in one dict (one fit)."""
    p, m = _pair(pred, mos)
    fitted = fit_logistic(p, m, fit) if fit is not None else p
    out = {"srcc": float(stats.spearmanr(p, m)[0]), "krcc": float(stats.kendalltau(p, m)[0]),
           "plcc": float(stats.pearsonr(p, m)[0])}
    if fit is not None:
        out[f"plcc_{fit}"] = float(stats.pearsonr(fitted, m)[0])
    out["rmse"] = float(np.sqrt(np.mean((fitted - m) ** 2)))
    return out
