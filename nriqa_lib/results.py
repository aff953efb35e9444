"""Tidy long-format results and the tables built from them (a table is a pivot of rows, never a hand-built string).

A metric row: dataset, backbone, head, split, metric, value (plus any extra tag columns).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import atomic_write_text
from .metrics import all_metrics
from .stats import compare_paired, holm, summarize

__all__ = ["split_metrics", "summary_table", "paired_tests", "format_pm", "export_table", "write_metrics_json"]


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
    return pd.DataFrame(out)


def paired_tests(rows: pd.DataFrame, by: Sequence[str], factor: str, reference: str | None, n_train: int, n_test: int,
                 metric: str = "srcc", alpha: float = 0.05) -> pd.DataFrame:
    """Each level of ``factor`` vs ``reference`` (or, if None, every pair) within each ``by`` group,
    on the same splits; Nadeau-Bengio and Wilcoxon p-values, Holm-adjusted over the whole table."""
    res = []
    r = rows[rows["metric"] == metric]
    for key, g in r.groupby(list(by), sort=True) if by else [((), r)]:
        key = key if isinstance(key, tuple) else (key,)
        wide = g.pivot_table(index="split", columns=factor, values="value")
        levels = list(wide.columns)
        pairs = ([(a, reference) for a in levels if a != reference] if reference is not None
                 else [(a, b) for i, a in enumerate(levels) for b in levels[i + 1:]])
        for a, b in pairs:
            if a not in wide or b not in wide:
                continue
            both = wide[[a, b]].dropna()
            if len(both) < 2:
                continue
            res.append({**dict(zip(by, key)), "a": a, "b": b, "metric": metric, "n_splits": len(both),
                        **compare_paired(both[a].to_numpy(), both[b].to_numpy(), n_train, n_test)})
    df = pd.DataFrame(res)
    if len(df):
        for col in ("p_nb", "p_wilcoxon"):
            rej, adj = holm(df[col].to_numpy(), alpha)
            df[f"{col}_holm"] = adj
        df["significant"] = df["p_nb_holm"] < alpha
    return df


def format_pm(summary: pd.DataFrame, index: Sequence[str], columns: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """Pivot a summary into 'mean ± sd' cells."""
    s = summary.copy()
    s["cell"] = [f"{m:.{digits}f} ± {sd:.{digits}f}" for m, sd in zip(s["mean"], s["sd"])]
    return s.pivot_table(index=list(index), columns=list(columns), values="cell", aggfunc="first")


def export_table(df: pd.DataFrame, out_dir: str | Path, name: str, caption: str = "") -> dict[str, Path]:
    """Write ``name``.csv / .md / .tex atomically; returns the paths."""
    out = Path(out_dir)
    paths = {ext: out / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
    df = df.copy()
    if isinstance(df.index, pd.MultiIndex):        # ('clive', 'lite0') rows -> dataset, backbone columns
        df = df.reset_index()
    if isinstance(df.columns, pd.MultiIndex):      # ('srcc', 'lite0') -> 'srcc lite0'
        df.columns = [" ".join(map(str, c)).strip() for c in df.columns]
    index = not isinstance(df.index, pd.RangeIndex)
    atomic_write_text(paths["csv"], df.to_csv(index=index, lineterminator="\n"))
    md = (f"{caption}\n\n" if caption else "") + df.to_markdown(index=index, floatfmt=".4g") + "\n"
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["tex"], df.to_latex(index=index, caption=caption or None, escape=True, float_format="%.4g"))
    return paths


def write_metrics_json(path: str | Path, data: dict) -> None:
    """DVC metrics file (``dvc metrics show/diff``): nested dict of floats, rounded for stable diffs."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (float, np.floating)):
            return round(float(x), 6)
        return x
    atomic_write_text(path, json.dumps(clean(data), indent=1, sort_keys=True) + "\n")
