"""What every table shares: long rows -> per-split metrics -> summaries with design-aware CIs -> the one
comparison helper (paired tests, Holm once within a stated family, what the family can detect).

A metric row: dataset, backbone, head, split, metric, value (plus any extra tag columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..core.metrics import all_metrics
from ..core.paths import SYNTHETIC_LABEL, human_rated, single_partition, split_sizes
from ..reporting import plots
from ..reporting.export import RANDOM_WEIGHTS
from ..core.stats import (bootstrap_cells_test, compare_paired, holm, mde_nadeau_bengio, mde_normal, min_p_wilcoxon,
                          pool_datasets, split_cells_test, splits_for_power, summarize, two_level_bootstrap)
from .inputs import TableInputs
from .result import Result

__all__ = ["TableInputs", "split_metrics", "summary_table", "Design", "designs", "protocol", "prediction_matrix",
           "summarize_groups", "compare", "holm_by_family", "family_note", "ci_label", "METRICS", "cross_designs",
           "RANDOM_WEIGHTS", "weights_label", "Result", "pooled", "POOLED_NOTE", "pooled_outputs",
           "power_curves", "dataset_cells", "POOLED_COLUMNS",
           "splits_provenance", "design_note"]

POOLED_NOTE = ("pooled: the cells of one dataset (backbones, heads) share its images and splits, so they are first "
               "combined into one test per dataset (Nadeau-Bengio corrected t on the cells' mean per-split difference; "
               "bootstrap cells: the mean of their replicates from the same resamples); human-rated datasets are then "
               "pooled as the mean over datasets with a one-sample t on k - 1 df (random effects by summary "
               "statistics; DerSimonian-Laird tau^2 and I^2 describe the heterogeneity; k = 1: that dataset's own test); the synthetic set (an SSIM proxy, not human opinions) is shown on its own rows, "
               "never pooled with them. p_holm: Holm over the table's human-rated rows (the synthetic rows are a "
               "family of their own); p_below: no bootstrap replicate on one side, p < 1/n_boot. mde80 / splits_80 "
               "(one-dataset Nadeau-Bengio rows): the difference detectable with 80% power / the splits that would "
               "detect the estimate with 80% power, at alpha/m of the row's Holm family; inf: never (the "
               "n_test/n_train term of the correction); I^2: heterogeneity between datasets (- for k = 1)")

METRICS = ("srcc", "plcc")   # plcc = raw Pearson (as P1)


@dataclass(frozen=True)
class Design:
    """How one dataset's per-split numbers were obtained, which decides their uncertainty and tests.

    ``splits``: J overlapping random (or published) splits, each with its own test part: Nadeau-Bengio
    corrected intervals and tests (n_train/n_test: mean part sizes) + Wilcoxon.
    ``shared``: J heads (splits of a source dataset, or training seeds on a dataset's single official
    split) all tested on the *same* images: two-level bootstrap (heads, then images; stats.two_level_bootstrap).
    """
    kind: str                     # "splits" | "shared"
    n_train: int = 0
    n_test: int = 0
    what: str = "splits"          # what the J heads are: "splits" | "training seeds" | "source splits"
    head_inflation: float = 1.0   # shared: head-level variance factor (overlapping source splits: Nadeau-Bengio's)
    provenance: str = ""          # where the splits come from: "10 published + 2 ours (seeded)", ...


def split_metrics(pred: pd.DataFrame, by: Sequence[str], part: str = "test", fit: str | None = None) -> pd.DataFrame:
    """Metrics of every group ``by`` (+ split) on ``part``: long rows (..., split, metric, value).

    ``fit=None``: PLCC and RMSE on the raw prediction (P1's protocol); "logistic4"/"logistic5" adds the fitted PLCC.
    """
    rows = []
    sub = pred[pred["part"] == part] if "part" in pred else pred
    for key, g in sub.groupby(list(by) + ["split"], sort=True):
        m = all_metrics(g["pred"].to_numpy(), g["mos"].to_numpy(), fit=fit)
        for k, v in m.items():
            rows.append((*key, k, v))
    return pd.DataFrame(rows, columns=[*by, "split", "metric", "value"])


def summary_table(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("srcc", "plcc")) -> pd.DataFrame:
    """mean, sd, median, CI over splits per group and metric (long)."""
    out = []
    for key, g in rows[rows["metric"].isin(metrics)].groupby(list(by) + ["metric"], sort=True):
        out.append({**dict(zip([*by, "metric"], key)), **summarize(g.sort_values("split")["value"].to_numpy())})
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


def compare(rows: pd.DataFrame, pred: pd.DataFrame, by: Sequence[str], factor: str, reference: str | None,
            design: dict[str, Design], family: Sequence[str], alpha: float = 0.05, n_boot: int = 1000,
            seed: int = 0) -> pd.DataFrame:
    """The one comparison helper of the tables: each level of ``factor`` vs ``reference`` (or every pair)
    within each ``by`` group (``by`` starts with "dataset"), SRCC on the same splits.

    Design ``splits``: Nadeau-Bengio corrected t (``p``) and Wilcoxon; ``shared``: the paired two-level
    bootstrap (``p``). Then Holm within each family (:func:`holm_by_family`), with what each family can
    detect: Wilcoxon's smallest attainable p and the minimum detectable difference at 80% power.
    """
    res, split_diffs, boot_dists = [], {}, {}
    r = rows[rows["metric"] == "srcc"]
    for key, g in r.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        tags = dict(zip(by, key))
        d = design[tags["dataset"]]
        wide = g.pivot_table(index="split", columns=factor, values="value")
        levels = list(wide.columns)
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
    return _detectable(t)


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


def _detectable(df: pd.DataFrame) -> pd.DataFrame:
    """An MDE beyond the largest possible difference (2) is no difference these splits can detect: NaN, flagged
    ``mde80_beyond_range`` (tables print NOT_DETECTABLE)."""
    beyond = df["mde80"].astype(float) > DIFF_RANGE[1]
    df["mde80_beyond_range"] = beyond.to_numpy()
    df.loc[beyond, "mde80"] = np.nan
    return df


def designs(splits: dict[str, pd.DataFrame]) -> dict[str, Design]:
    """Per dataset (name -> its split file's rows, in the run's order), its design: random/published splits
    (Nadeau-Bengio, with mean part sizes) or one partition trained with several seeds (shared test images:
    two-level bootstrap)."""
    out = {}
    for d, sp in splits.items():
        if single_partition(d):
            out[d] = Design("shared", what="training seeds", provenance=f"one official partition, "
                                                                        f"{sp['split'].nunique()} training seeds")
        else:
            n_tr, n_te = split_sizes(sp)
            out[d] = Design("splits", n_tr, n_te, provenance=splits_provenance(sp))
    return out


def splits_provenance(sp: pd.DataFrame) -> str:
    """What a split file holds, for captions: published splits carry seed -1, ours a seed >= 0."""
    seeds = sp.groupby("split")["seed"].first()
    pub, ours = int((seeds < 0).sum()), int((seeds >= 0).sum())
    if pub and ours:
        return f"{pub} published + {ours} ours (seeded)"
    return f"{pub} published splits" if pub else f"{ours} random splits (ours, seeded)"


def design_note(design: dict[str, "Design"]) -> str:
    """One clause for a caption: each dataset's splits and where they come from."""
    parts = [f"{d}: {x.provenance}" for d, x in design.items() if x.provenance]
    return f" Splits: {'; '.join(parts)}." if parts else ""


def cross_designs(pairs: Sequence[tuple[str, str]], splits: dict[str, pd.DataFrame]) -> dict[str, Design]:
    """Cross-dataset pairs (``splits``: each source dataset's split file): every source split's head is tested on the
    same whole target set (two-level bootstrap); the source splits overlap in their training sets, so their
    head-level variance gets Nadeau-Bengio's factor 1 + J n_test/n_train (STUDY_SPEC.md section 4;
    stats.two_level_bootstrap)."""
    out = {}
    for a, b in pairs:
        sp = splits[a]
        n_tr, n_te = split_sizes(sp)
        J = sp["split"].nunique()
        infl = 1 + J * n_te / n_tr if J > 1 else 1.0
        out[f"{a}->{b}"] = Design("shared", what=f"source splits, variance x{infl:.2f} for their overlap",
                                  head_inflation=infl)
    return out


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


def _dataset_human(key: str) -> bool:
    """A cell's dataset key ("clive", or "source->target" for cross-dataset pairs) rests on human opinions only if
    every dataset in it does."""
    return all(human_rated(d) for d in str(key).split("->"))


def dataset_cells(tests: pd.DataFrame, claim: Sequence[str], design: dict[str, Design] | None = None,
                  diff: str = "diff") -> pd.DataFrame:
    """Per claim and dataset, one test for all of its cells (backbones, heads, ...): cells of one dataset share
    its test images and splits, so they are combined before anything is pooled. Nadeau-Bengio cells: the
    per-split differences averaged over cells, one corrected t (:func:`nriqa_lib.core.stats.split_cells_test`);
    bootstrap cells: the replicates (same resamples) averaged over cells
    (:func:`nriqa_lib.core.stats.bootstrap_cells_test`). One cell: that cell's own test, unchanged."""
    split_diffs, boot = tests.attrs.get("split_diffs", {}), tests.attrs.get("boot_dists", {})
    out = []
    for key, g in tests.groupby([*claim, "dataset"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        ds = key[-1]
        row = {**dict(zip(claim, key[:-1])), "dataset": ds, "cells": len(g), "human_rated": _dataset_human(ds)}
        if all(i in split_diffs for i in g.index) and design is not None and ds in design:
            d = design[ds]
            D = pd.concat([split_diffs[i] for i in g.index], axis=1, join="inner").dropna()
            r = split_cells_test(D.to_numpy().T, d.n_train, d.n_test)
            row.update(r, test="Nadeau-Bengio corrected t on the cells' mean per-split difference",
                       n_train=d.n_train, n_test=d.n_test, p_below=False)
        elif all(i in boot for i in g.index):
            r = bootstrap_cells_test(np.stack([boot[i] for i in g.index]), g[diff].to_numpy())
            row.update(r, test=("paired bootstrap" if len(g) == 1 else "paired bootstrap of the cells' mean "
                                "difference (same resamples)"), sd_diff=np.nan, n_splits=np.nan, n_train=np.nan,
                       n_test=np.nan)
        elif len(g) == 1:
            c = g.iloc[0]
            row.update(estimate=c[diff], se=c["se"], ci_low=c["ci_low"], ci_high=c["ci_high"], p=c["p"],
                       df=np.nan, test=str(c.get("test", "")), p_below=bool(c.get("p_below", False)),
                       sd_diff=c.get("sd_diff", np.nan), n_splits=c.get("n_splits", np.nan), n_train=np.nan,
                       n_test=np.nan)
        else:
            raise ValueError(f"claim {key[:-1]} on {ds}: {len(g)} cells without per-split differences or bootstrap "
                             f"replicates cannot be combined (build the tests with compare(), or attach "
                             f"tests.attrs['boot_dists'])")
        out.append(row)
    return pd.DataFrame(out)


POOLED_COLUMNS = ("scope", "k", "cells", "estimate", "ci_low", "ci_high", "p", "p_holm", "significant", "test", "se",
                  "df", "tau2", "i2", "p_below", "datasets", "splits_80", "mde80", "mde80_beyond_range", "sd_diff",
                  "n_splits", "n_train", "n_test")


def pooled(tests: pd.DataFrame, claim: Sequence[str], design: dict[str, Design] | None = None, alpha: float = 0.05,
           diff: str = "diff") -> pd.DataFrame:
    """The pooled verdicts of a test table, per claim (rows sharing the ``claim`` columns; one claim = one
    score, one comparison): first one test per dataset (:func:`dataset_cells`), then
    - scope "human-rated": the human-rated datasets pooled, k = 1: that dataset's test itself; k >= 2: the mean
      over datasets with a one-sample t on k - 1 df (:func:`nriqa_lib.core.stats.pool_datasets`; DerSimonian-Laird
      tau^2 and I^2 describe the heterogeneity, ``estimate_ivw`` is the inverse-variance estimate);
    - one row per dataset that is not human-rated (the synthetic set), labelled, never pooled with the others.
    Holm runs over the human-rated rows of the table (``p_holm``; the synthetic rows are a family of their own).
    For a one-dataset Nadeau-Bengio row: ``mde80``, the difference detectable with 80% power, and
    ``splits_80``, the splits that would detect the estimate with 80% power, both at alpha/m (m = rows of its
    Holm family, the threshold its first test faces), on that dataset's part sizes and its sd of differences."""
    if not len(tests):
        return pd.DataFrame(columns=[*claim, *POOLED_COLUMNS])
    cells = dataset_cells(tests, claim, design, diff)
    out = []
    for key, g in cells.groupby(list(claim), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        tags = dict(zip(claim, key))
        hum = g[g["human_rated"]]
        if len(hum) == 1:
            out.append({**tags, **hum.iloc[0].to_dict(), "scope": "human-rated", "k": 1, "tau2": np.nan,
                        "i2": np.nan, "datasets": hum.iloc[0]["dataset"]})
        elif len(hum) > 1:
            re = pool_datasets(hum["estimate"].to_numpy(), hum["se"].to_numpy())
            out.append({**tags, "scope": "human-rated", "cells": int(hum["cells"].sum()), "p_below": False,
                        "test": f"mean over {len(hum)} datasets, one-sample t ({len(hum) - 1} df)",
                        "datasets": ", ".join(hum["dataset"]),
                        **{k: re[k] for k in ("k", "estimate", "se", "ci_low", "ci_high", "p", "df", "tau2", "i2",
                                              "estimate_ivw")}})
        for r in g[~g["human_rated"]].to_dict("records"):
            out.append({**tags, **r, "scope": f"{SYNTHETIC_LABEL}: {r['dataset']}", "k": 1, "tau2": np.nan,
                        "i2": np.nan, "datasets": r["dataset"]})
    df = pd.DataFrame(out)
    df["p_holm"] = np.nan
    for hum in (True, False):
        sel = (df["scope"] == "human-rated") == hum
        if sel.any():
            df.loc[sel, "p_holm"] = holm(df.loc[sel, "p"].fillna(1.0).to_numpy(), alpha)[1]
            df.loc[sel, "m_family"] = int(sel.sum())
    df["significant"] = df["p_holm"] < alpha
    df["splits_80"], df["mde80"] = np.nan, np.nan
    for i, r in df.iterrows():
        if r["k"] == 1 and np.isfinite(r.get("sd_diff", np.nan)) and np.isfinite(r.get("n_train", np.nan)):
            a = alpha / r["m_family"]
            df.loc[i, "splits_80"] = splits_for_power(r["estimate"], r["sd_diff"], r["n_train"], r["n_test"], a)
            df.loc[i, "mde80"] = mde_nadeau_bengio(r["sd_diff"], int(r["n_splits"]), r["n_train"], r["n_test"], a)
    for c in ("k", "cells", "m_family"):
        df[c] = df[c].astype(int)
    df["p_below"] = df["p_below"].fillna(False).astype(bool)
    df = _detectable(in_range(df, *DIFF_RANGE))
    cols = [*claim, *POOLED_COLUMNS, "m_family"]
    return df[[c for c in cols if c in df.columns]].reset_index(drop=True)


def pooled_outputs(res: Result, run: TableInputs, tests: pd.DataFrame, claim: str, cell: Sequence[str],
                   design: dict[str, Design] | None, name: str, what: str, diff: str = "diff") -> pd.DataFrame:
    """The pooled verdicts of a test table (``<name>_pooled``: rows per ``claim`` level, :func:`pooled`), its
    forest plot (``<name>_forest.png``: every cell's difference with its CI, and the pooled diamonds) and power
    curves per claim and dataset (``<name>_power.png``), added to ``res``; returns the pooled rows."""
    pool = pooled(tests, [claim], design, run.stats.alpha, diff)
    res.table(f"{name}_pooled", pool, f"{what}: pooled. " + POOLED_NOTE + "." + (design_note(design) if design else ""))
    if len(tests):
        res.figure(f"{name}_forest", lambda: plots.forest(
            tests, pool, claim, list(cell), diff, f"{what}: per-cell differences (95% CI of each cell's test) and the "
                                                  f"pooled estimates"))
    curves = power_curves(pool, claim, run.stats.alpha)
    if len(curves):
        res.figure(f"{name}_power", lambda: plots.power_plot(
            curves, "claim on dataset", f"{what}: power of the Nadeau-Bengio test at the estimate vs number of "
                                        f"splits, per claim and dataset, at alpha/m of its Holm family (dot: the "
                                        f"splits used)"))
    return pool


def power_curves(pool: pd.DataFrame, claim: str, alpha: float, max_splits: int = 60) -> pd.DataFrame:
    """Power vs number of splits at each one-dataset row's estimate (Nadeau-Bengio rows of :func:`pooled`;
    :func:`nriqa_lib.core.stats.nb_power` with that dataset's sd of the mean per-split difference and part sizes, at
    alpha/m of the row's Holm family, the level its test faces)."""
    from ..core.stats import nb_power
    rows = []
    for r in pool.itertuples():
        if r.k != 1 or not (np.isfinite(getattr(r, "sd_diff", np.nan)) and r.sd_diff > 0 and np.isfinite(r.estimate)
                            and np.isfinite(getattr(r, "n_train", np.nan))):
            continue
        a = alpha / r.m_family
        for J in range(2, max_splits + 1):
            rows.append({claim: getattr(r, claim), "dataset": r.datasets, "claim on dataset":
                         f"{getattr(r, claim)} on {r.datasets}", "n_splits": J, "used": J == int(r.n_splits),
                         "power": nb_power(r.estimate, r.sd_diff, J, int(r.n_train), int(r.n_test), a)})
    return pd.DataFrame(rows)
