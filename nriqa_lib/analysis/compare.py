"""What every table shares: long rows -> per-split metrics -> summaries with design-aware CIs -> the one
comparison helper (paired tests, Holm once within a stated family, what the family can detect); the ranges every
interval is kept inside, and the labels of a table's caption.

A metric row: dataset, backbone, head, split, metric, value (plus any extra tag columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..core.metrics import all_metrics
from .stats import (compare_paired, holm, mde_nadeau_bengio, mde_normal, min_p_wilcoxon, summarize,
                          two_level_bootstrap)
from .format import RANDOM_WEIGHTS, format_pm
from .design import Design

if TYPE_CHECKING:
    from .inputs import TableInputs

__all__ = ["Comparison", "compare_levels", "METRICS", "split_metrics", "summary_table", "prediction_matrix",
           "summarize_groups", "compare",
           "holm_by_family", "family_note", "DIFF_RANGE", "CORRELATION_RANGE", "NOT_DETECTABLE", "metric_range",
           "in_range", "protocol", "ci_label", "weights_label", "RANDOM_WEIGHTS", "detectable"]

METRICS = ("srcc", "plcc")   # plcc = raw Pearson (as P1)


def split_metrics(pred: pd.DataFrame, by: Sequence[str], part: str = "test", fit: str | None = None) -> pd.DataFrame:
    """Metrics of every group ``by`` (+ split) on ``part``: long rows (..., split, metric, value).

    ``fit=None``: PLCC and RMSE on the raw prediction (P1's protocol); "logistic4"/"logistic5" adds the fitted PLCC.
    Predictions with a ``seed`` column (``train.seeds_per_split`` > 1): each split's metric is the mean over its seeds' heads
    (rows without a seed, e.g. fine-tuned runs beside frozen heads, count as seed 0).
    """
    rows = []
    sub = pred[pred["part"] == part] if "part" in pred else pred
    seeded = "seed" in sub
    if seeded:
        sub = sub.assign(seed=sub["seed"].fillna(0).astype(int))
    for key, g in sub.groupby(list(by) + ["split"] + (["seed"] if seeded else []), sort=True):
        m = all_metrics(g["pred"].to_numpy(), g["mos"].to_numpy(), fit=fit)
        for k, v in m.items():
            rows.append((*key, k, v))
    if not seeded:
        return pd.DataFrame(rows, columns=[*by, "split", "metric", "value"])
    out = pd.DataFrame(rows, columns=[*by, "split", "seed", "metric", "value"])
    # first-appearance order: the rows come out as the one-seed path orders them (groups, then the metrics)
    return out.groupby([*by, "split", "metric"], sort=False, as_index=False)["value"].mean()


def summary_table(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("srcc", "plcc")) -> pd.DataFrame:
    """mean, sd, median, CI over splits per group and metric (long)."""
    out = []
    for key, g in rows[rows["metric"].isin(metrics)].groupby(list(by) + ["metric"], sort=True):
        out.append({**dict(zip([*by, "metric"], key)), **summarize(g.sort_values("split", kind="stable")["value"].to_numpy())})
    return _metric_ranges(pd.DataFrame(out))


def _metric_ranges(out: pd.DataFrame) -> pd.DataFrame:
    for m in out["metric"].unique() if "metric" in out else []:
        sel = out["metric"] == m
        out.loc[sel] = in_range(out.loc[sel].copy(), *metric_range(str(m)))
    return out


def prediction_matrix(pred: pd.DataFrame, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(J, N) predictions of J heads on the same N images (rows: split, columns: image) and the N MOS."""
    sub = pred[pred["part"] == part] if "part" in pred else pred
    wide = sub.pivot_table(index="split", columns="image", values="pred", aggfunc="first")
    if wide.isna().any().any():
        raise ValueError("heads were not all tested on the same images; a shared-test design needs that")
    mos = sub.groupby("image")["mos"].first().reindex(wide.columns).to_numpy()
    return wide.to_numpy(), mos


def summarize_groups(rows: pd.DataFrame, pred: pd.DataFrame, by: Sequence[str], design: dict[str, Design],
                     metrics: Sequence[str] = ("srcc", "plcc"), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """mean, sd, median over splits per group and metric, with a 95% CI that fits the design: Nadeau-Bengio
    corrected t over splits, or (shared test images) the two-level bootstrap of the mean SRCC. ``by`` starts
    with "dataset"; ``ci_kind`` names the interval."""
    out = summary_table(rows, by, metrics)
    for i, r in out.iterrows():
        d = design[r["dataset"]]
        vals = rows[(rows["metric"] == r["metric"]) & np.logical_and.reduce([rows[c] == r[c] for c in by])]["value"]
        if d.kind == "splits":
            s = summarize(vals.to_numpy(), n_train=d.n_train, n_test=d.n_test)
        else:
            s = summarize(vals.to_numpy())
            if r["metric"] == "srcc":
                g = pred[np.logical_and.reduce([pred[c] == r[c] for c in by])]
                b = two_level_bootstrap(*prediction_matrix(g), n_boot=n_boot, seed=seed,
                                        head_inflation=d.head_inflation)
                s.update(ci_low=b["ci_low"], ci_high=b["ci_high"],
                         ci_kind=f"two-level bootstrap ({d.what}, then test images)")
        for k in ("ci_low", "ci_high", "ci_kind"):
            out.loc[i, k] = s[k]
    return _metric_ranges(out)


@dataclass(frozen=True)
class Comparison:
    """Levels of one factor compared with a reference level on the same splits: the per-split metrics (``rows``),
    their summaries with design-aware CIs (``summary``), the 'mean ± sd' SRCC table (cells x levels) and the tests
    of each level vs the reference (``tests``; Holm within a level)."""
    rows: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame
    tests: pd.DataFrame


def compare_levels(pred: pd.DataFrame, cells: Sequence[str], factor: str, reference: str,
                   design: dict[str, Design], inputs: "TableInputs") -> Comparison:
    """The one comparison pipeline of the tables that compare heads (T2), selection heads (T3), input policies (T5)
    and training regimes (T6): per-split metrics of the test rows ``pred`` per cell and level, their summaries,
    the SRCC table, and each level vs ``reference`` in each cell (:func:`compare`, one Holm family per level: a
    claim), at ``inputs.stats``' alpha, bootstrap size and seed."""
    by = [*cells, factor]
    st = inputs.stats
    rows = split_metrics(pred, by)
    summ = summarize_groups(rows, pred, by, design, METRICS, st.n_boot, st.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], list(cells), [factor])
    tests = compare(rows, pred, list(cells), factor, reference, design, ["a"], st.alpha, st.n_boot, st.seed)
    return Comparison(rows, summ, table, tests)


def compare(rows: pd.DataFrame, pred: pd.DataFrame, by: Sequence[str], factor: str, reference: str | None,
            design: dict[str, Design], family: Sequence[str], alpha: float = 0.05, n_boot: int = 1000,
            seed: int = 0, order: Callable[[str], object] | None = None) -> pd.DataFrame:
    """The one comparison helper of the tables: each level of ``factor`` vs ``reference`` (or every pair)
    within each ``by`` group (``by`` starts with "dataset"), SRCC on the same splits.

    Design ``splits``: Nadeau-Bengio corrected t (``p``) and Wilcoxon; ``shared``: the paired two-level
    bootstrap (``p``). Then Holm within each family (:func:`holm_by_family`), with what each family can
    detect: Wilcoxon's smallest attainable p and the minimum detectable difference at 80% power. Every pair
    (``reference`` None): a - b with a before b in the levels sorted by ``order`` (default: by name).
    """
    res, split_diffs, boot_dists = [], {}, {}
    r = rows[rows["metric"] == "srcc"]
    for key, g in r.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        tags = dict(zip(by, key))
        d = design[tags["dataset"]]
        wide = g.pivot_table(index="split", columns=factor, values="value")
        levels = sorted(wide.columns, key=order) if order else list(wide.columns)
        pairs = ([(a, reference) for a in levels if a != reference] if reference is not None
                 else [(a, b) for i, a in enumerate(levels) for b in levels[i + 1:]])
        for a, b in pairs:
            if a not in wide or b not in wide:
                continue
            both = wide[[a, b]].dropna()
            if len(both) < 2 and d.kind == "splits":
                continue
            row = {**tags, "a": a, "b": b, "metric": "srcc", "n_splits": len(both)}
            if d.kind == "splits":
                c = compare_paired(both[a].to_numpy(), both[b].to_numpy(), d.n_train, d.n_test)
                split_diffs[len(res)] = both[a] - both[b]          # for the pooled verdict's covariance
                se = c["sd_diff"] * np.sqrt(1 / len(both) + d.n_test / d.n_train)      # the corrected t's scale
                tq = stats.t.ppf(0.975, len(both) - 1)
                row.update(c, test="Nadeau-Bengio corrected t", p=c["p_nb"], se=se, ci_low=c["diff"] - tq * se,
                           ci_high=c["diff"] + tq * se)
            else:
                sel = np.logical_and.reduce([pred[c] == v for c, v in tags.items()])
                pa, mos = prediction_matrix(pred[sel & (pred[factor] == a)])
                pb, _ = prediction_matrix(pred[sel & (pred[factor] == b)])
                bt = two_level_bootstrap(pa, mos, pb, n_boot=n_boot, seed=seed, head_inflation=d.head_inflation)
                boot_dists[len(res)] = bt["dist"]          # same seed, J and N: the same resamples in every cell
                row.update(diff=bt["value"], ci_low=bt["ci_low"], ci_high=bt["ci_high"], se=bt["se"],
                           test=f"two-level bootstrap ({d.what}, then images)", p=bt["p"], p_below=bt["p_below"],
                           p_wilcoxon=np.nan)
            res.append(row)
    df = in_range(pd.DataFrame(res), *DIFF_RANGE)
    if len(df):
        df = holm_by_family(df, family, alpha, design)
    df.attrs["split_diffs"] = split_diffs      # row -> per-split differences (Nadeau-Bengio rows)
    df.attrs["boot_dists"] = boot_dists        # row -> bootstrap replicates (bootstrap rows)
    return df


def holm_by_family(tests: pd.DataFrame, family: Sequence[str], alpha: float,
                   design: dict[str, Design] | None = None, p_cols: Sequence[str] = ("p", "p_wilcoxon")) -> pd.DataFrame:
    """Holm's adjustment of each column of ``p_cols`` within each family (rows sharing the ``family``
    columns; the first column decides ``significant``), and per row what its family can detect:
    ``m_family``, Holm's first threshold alpha/m, Wilcoxon's smallest attainable p (Nadeau-Bengio rows, with
    ``wilcoxon_can_reject``), and ``mde80``, the true SRCC difference detectable with 80% power at alpha/m
    (Nadeau-Bengio from the row's sd of differences; bootstrap tests from their standard error ``se``)."""
    t = tests.copy()
    t["family"] = t[list(family)].astype(str).agg(" / ".join, axis=1)
    for col in p_cols:
        t[f"{col}_holm"] = np.nan
    for _, idx in t.groupby("family").groups.items():
        for col in p_cols:
            ok = t.loc[idx, col].notna()
            if ok.any():
                t.loc[idx[ok.to_numpy()], f"{col}_holm"] = holm(t.loc[idx[ok.to_numpy()], col].to_numpy(), alpha)[1]
        t.loc[idx, "m_family"] = len(idx)
    t["m_family"] = t["m_family"].astype(int)
    t["holm_first_threshold"] = alpha / t["m_family"]
    nb = t["test"].astype(str).str.startswith("Nadeau") if "test" in t else pd.Series(False, index=t.index)
    t["min_p_wilcoxon"] = [min_p_wilcoxon(n) if is_nb else np.nan for n, is_nb in zip(t["n_splits"], nb)]
    t["wilcoxon_can_reject"] = t["min_p_wilcoxon"] < t["holm_first_threshold"]
    mde = []
    for r, is_nb in zip(t.itertuples(), nb):
        a = alpha / r.m_family
        if is_nb:
            d = design[r.dataset]
            mde.append(mde_nadeau_bengio(r.sd_diff, r.n_splits, d.n_train, d.n_test, a))
        else:
            mde.append(mde_normal(r.se, a) if np.isfinite(r.se) else np.nan)
    t["mde80"] = mde
    t["significant"] = t[f"{p_cols[0]}_holm"] < alpha
    return detectable(t)


def family_note(tests: pd.DataFrame, family_desc: str, alpha: float) -> str:
    """One sentence for a caption: the Holm family, its sizes and whether Wilcoxon can reach significance."""
    if not len(tests):
        return f"Holm family: {family_desc}."
    m = sorted(tests["m_family"].unique())
    msg = f"Holm family: {family_desc} (m = {', '.join(map(str, m))}; first threshold alpha/m)"
    w = tests.dropna(subset=["min_p_wilcoxon"]) if "min_p_wilcoxon" in tests else tests.iloc[:0]
    if len(w):
        j = int(w["n_splits"].min())
        can = bool(w["wilcoxon_can_reject"].all())
        msg += (f"; Wilcoxon's smallest attainable p with J = {j} is {min_p_wilcoxon(j):.4g}, so its Holm column "
                + ("can" if can else "can NOT") + " reach significance")
    return msg + (f"; mde80 = SRCC difference detectable with 80% power at alpha/m (alpha = {alpha:g}), "
                  f"'{NOT_DETECTABLE}' where it would exceed 2, the largest possible difference.")


# The ranges the statistics live in. A t-interval over a few splits can pass them; the part outside is no possible
# value, so every interval is shown inside (and an MDE beyond a difference's range is "not detectable").
DIFF_RANGE = (-2.0, 2.0)            # a difference of two correlations
CORRELATION_RANGE = (-1.0, 1.0)     # SRCC, PLCC (raw or fitted), KRCC
NOT_DETECTABLE = "not detectable with these splits"


def metric_range(metric: str) -> tuple[float, float]:
    """The range of a metric's values: correlations in [-1, 1], RMSE in [0, inf)."""
    return (0.0, np.inf) if metric.startswith("rmse") else CORRELATION_RANGE


def in_range(df: pd.DataFrame, lo: float, hi: float, cols: Sequence[str] = ("ci_low", "ci_high")) -> pd.DataFrame:
    """``df`` with its interval columns clipped to [lo, hi] (in place; returned)."""
    for c in cols:
        if c in df:
            df[c] = df[c].astype(float).clip(lo, hi)
    return df


def detectable(df: pd.DataFrame) -> pd.DataFrame:
    """An MDE beyond the largest possible difference (2) is no difference these splits can detect: NaN, flagged
    ``mde80_beyond_range`` (tables print NOT_DETECTABLE)."""
    beyond = df["mde80"].astype(float) > DIFF_RANGE[1]
    df["mde80_beyond_range"] = beyond.to_numpy()
    df.loc[beyond, "mde80"] = np.nan
    return df


def protocol(select_on: str) -> str:
    """How the epoch (and ridge's alpha) was chosen, from the params actually used."""
    if select_on == "test":
        return "paper-faithful protocol, best-on-test: epoch chosen on the test part itself (optimistic, as P1 tracks it)"
    return "clean protocol: epoch chosen on val"


def ci_label(summary: pd.DataFrame) -> str:
    kinds = sorted(summary["ci_kind"].dropna().unique())
    return "95% CI: " + ("; ".join(kinds) if kinds else "none")


def weights_label(pretrained: bool) -> str:
    """The label every table of a random-weights run carries (``features.pretrained: false``, the smoke profile)."""
    return "" if pretrained else f" [{RANDOM_WEIGHTS}]"
