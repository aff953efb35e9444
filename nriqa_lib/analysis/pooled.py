"""The pooled verdicts of a test table: the cells of one dataset combined into one test, then the human-rated
datasets pooled (random effects by summary statistics), Holm over the table's rows; the forest and power figures."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..core.paths import SYNTHETIC_LABEL, human_rated
from .stats import (bootstrap_cells_test, holm, mde_nadeau_bengio, pool_datasets, split_cells_test,
                          splits_for_power)
from .compare import DIFF_RANGE, detectable, in_range
from .design import Design, design_note
from .inputs import TableInputs
from .result import Result

__all__ = ["POOLED_NOTE", "POOLED_COLUMNS", "dataset_cells", "pooled", "pooled_outputs", "power_curves"]

POOLED_NOTE = ("pooled: the cells of one dataset (backbones, heads) share its images and splits, so they are first "
               "combined into one test per dataset (Nadeau-Bengio corrected t on the cells' mean per-split difference; "
               "bootstrap cells: the mean of their replicates from the same resamples, then the normal bootstrap: p and CI "
               "from estimate / bootstrap se); human-rated datasets are then "
               "pooled as the mean over datasets with a one-sample t on k - 1 df (random effects by summary "
               "statistics; DerSimonian-Laird tau^2 and I^2 describe the heterogeneity; k = 1: that dataset's own test); the synthetic set (an SSIM proxy, not human opinions) is shown on its own rows, "
               "never pooled with them. p_holm: Holm over the table's human-rated rows (the synthetic rows are a "
               "family of their own; the findings' verdicts use the family-adjusted p of results/summary.csv instead). mde80 / splits_80 "
               "(one-dataset Nadeau-Bengio rows): the difference detectable with 80% power / the splits that would "
               "detect the estimate with 80% power, at alpha/m of the row's Holm family; inf: never (the "
               "n_test/n_train term of the correction); I^2: heterogeneity between datasets (- for k = 1)")


def _dataset_human(key: str) -> bool:
    """A cell's dataset key ("clive", or "source->target" for cross-dataset pairs) rests on human opinions only if
    every dataset in it does."""
    return all(human_rated(d) for d in str(key).split("->"))


def dataset_cells(tests: pd.DataFrame, claim: Sequence[str], design: dict[str, Design] | None = None,
                  diff: str = "diff") -> pd.DataFrame:
    """Per claim and dataset, one test for all of its cells (backbones, heads, ...): cells of one dataset share
    its test images and splits, so they are combined before anything is pooled. Nadeau-Bengio cells: the
    per-split differences averaged over cells, one corrected t (:func:`nriqa_lib.analysis.stats.split_cells_test`);
    bootstrap cells: the replicates (same resamples) averaged over cells
    (:func:`nriqa_lib.analysis.stats.bootstrap_cells_test`). One cell: that cell's own test, unchanged."""
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
            # cells whose replicates resampled few units (T4's K random inits) carry their df: the smallest
            df = float(g["df"].min()) if "df" in g and g["df"].notna().all() else float("inf")
            r = bootstrap_cells_test(np.stack([boot[i] for i in g.index]), g[diff].to_numpy(), df=df)
            kind = "normal bootstrap" if not np.isfinite(df) else f"bootstrap t ({df:.1f} df)"
            row.update(r, test=(f"{kind} (paired resamples)" if len(g) == 1 else f"{kind} of "
                                "the cells' mean difference (same resamples)"), sd_diff=np.nan, n_splits=np.nan, n_train=np.nan,
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
      over datasets with a one-sample t on k - 1 df (:func:`nriqa_lib.analysis.stats.pool_datasets`; DerSimonian-Laird
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
    df = detectable(in_range(df, *DIFF_RANGE))
    cols = [*claim, *POOLED_COLUMNS, "m_family"]
    return df[[c for c in cols if c in df.columns]].reset_index(drop=True)


def pooled_outputs(res: Result, inputs: TableInputs, tests: pd.DataFrame, claim: str, cell: Sequence[str],
                   design: dict[str, Design] | None, name: str, what: str, diff: str = "diff") -> pd.DataFrame:
    """The pooled verdicts of a test table (``<name>_pooled``: rows per ``claim`` level, :func:`pooled`), its
    forest plot (``<name>_forest.png``: every cell's difference with its CI, and the pooled diamonds) and power
    curves per claim and dataset (``<name>_power.png``), added to ``res``; returns the pooled rows."""
    pool = pooled(tests, [claim], design, inputs.stats.alpha, diff)
    res.table(f"{name}_pooled", pool, f"{what}: pooled. " + POOLED_NOTE + "." + (design_note(design) if design else ""))
    if len(tests):
        res.figure(f"{name}_forest", "forest", tests, pool, claim, list(cell), diff,
                   f"{what}: per-cell differences (95% CI of each cell's test) and the pooled estimates")
    curves = power_curves(pool, claim, inputs.stats.alpha)
    if len(curves):
        res.figure(f"{name}_power", "power_plot", curves, "claim on dataset",
                   f"{what}: power of the Nadeau-Bengio test at the estimate vs number of splits, per claim and "
                   f"dataset, at alpha/m of its Holm family (dot: the splits used)")
    return pool


def power_curves(pool: pd.DataFrame, claim: str, alpha: float, max_splits: int = 60) -> pd.DataFrame:
    """Power vs number of splits at each one-dataset row's estimate (Nadeau-Bengio rows of :func:`pooled`;
    :func:`nriqa_lib.analysis.stats.nb_power` with that dataset's sd of the mean per-split difference and part sizes, at
    alpha/m of the row's Holm family, the level its test faces)."""
    from .stats import nb_power
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
