"""Tables and metrics to files: CSV / Markdown / LaTeX written atomically, DVC metrics JSON, figures drawn by the
plot a table names (:func:`write_result`: the one writer of a table's folder)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.io import atomic_write_text
from . import plots

__all__ = ["export_table", "write_metrics_json", "table_dirs", "round_sig", "write_csv", "TABLE_DIGITS",
           "write_result"]

# Significant digits of every float a table file stores. The last bits of a float depend on the CPU's BLAS
# kernel (OpenBLAS picks SkylakeX, Haswell, Zen, ... by CPU), so full-precision tables differ between machines
# although every result agrees far below any reported uncertainty; 6 significant digits (a relative 5e-7) make
# the committed tables byte-identical across CPUs except for a value within 1e-16 of a rounding boundary.
TABLE_DIGITS = 6


def round_sig(df: pd.DataFrame, digits: int = TABLE_DIGITS) -> pd.DataFrame:
    """A copy with every float cell rounded to ``digits`` significant digits (via its decimal string, so the
    value written is exactly the rounded one); integers, text and non-finite values unchanged."""
    out = df.copy()

    def r(x):
        if isinstance(x, (float, np.floating)) and np.isfinite(x):
            return float(f"{float(x):.{digits}g}")
        return x

    for c in out.columns:
        col = out[c]
        if pd.api.types.is_float_dtype(col.dtype):
            out[c] = col.map(r).astype(col.dtype)
        elif col.dtype == object:
            out[c] = col.map(r)
    if isinstance(out.index, pd.MultiIndex) or pd.api.types.is_float_dtype(out.index.dtype):
        out.index = out.index.map(lambda k: tuple(map(r, k)) if isinstance(k, tuple) else r(k))
    return out


def write_csv(df: pd.DataFrame, path: str | Path, index: bool = False, digits: int = TABLE_DIGITS) -> Path:
    """A table CSV, floats at ``digits`` significant digits (:func:`round_sig`), written atomically."""
    path = Path(path)
    atomic_write_text(path, round_sig(df, digits).to_csv(index=index, lineterminator="\n"))
    return path


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
    df = round_sig(df)
    atomic_write_text(paths["csv"], df.to_csv(index=index, lineterminator="\n"))
    shown = _detectable_mde(_bounded_p(df))
    md = (f"{caption}\n\n" if caption else "") + shown.to_markdown(index=index, floatfmt=".4g") + "\n"
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["tex"], shown.to_latex(index=index, caption=caption or None, escape=True,
                                                   float_format="%.4g"))
    return paths


def _bounded_p(df: pd.DataFrame) -> pd.DataFrame:
    """For reading (Markdown/LaTeX): a bootstrap p below its resolution (``p_below``: no replicate on one side) is
    printed "< 1/n_boot"; the CSV keeps the number (the bound) and the flag."""
    if "p" not in df or "p_below" not in df or not df["p_below"].fillna(False).astype(bool).any():
        return df
    out = df.copy()
    below = out["p_below"].fillna(False).astype(bool)
    out["p"] = [(f"< {v:.4g}" if b else f"{v:.4g}") if pd.notna(v) else "" for v, b in zip(out["p"], below)]
    return out


def _detectable_mde(df: pd.DataFrame) -> pd.DataFrame:
    """For reading: an MDE beyond a difference's range (``mde80_beyond_range``) is printed "not detectable with
    these splits"; the CSV keeps NaN and the flag."""
    if "mde80" not in df or "mde80_beyond_range" not in df:
        return df
    out = df.copy()
    beyond = out.pop("mde80_beyond_range").fillna(False).astype(bool)
    if beyond.any():
        out["mde80"] = ["not detectable with these splits" if b else ("" if pd.isna(v) else f"{v:.4g}")
                        for v, b in zip(out["mde80"], beyond)]
    return out


def write_metrics_json(path: str | Path, data: dict) -> None:
    """DVC metrics file (``dvc metrics show/diff``): nested dict of floats, rounded for stable diffs."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (float, np.floating)):
            return round(float(x), 6)
        return x
    atomic_write_text(path, json.dumps(clean(data), indent=1, sort_keys=True) + "\n")


def table_dirs(out_dir: str | Path) -> tuple[Path, Path, Path]:
    """(out_dir, out_dir/tables, out_dir/figures), created."""
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return out, out / "tables", out / "figures"


def write_result(out_dir: str | Path, res) -> dict:
    """Write a table's :class:`~nriqa_lib.analysis.result.Result` into ``out_dir`` (tables/, figures/,
    metrics.json; each file atomically, in the order the table added them); returns its frames."""
    out, tdir, fdir = table_dirs(out_dir)
    for kind, name, obj, caption in res.files:
        if kind == "table":
            export_table(obj, tdir, name, caption)
        elif kind == "csv":
            write_csv(obj, tdir / f"{name}.csv")
        else:
            plot, args, kwargs = obj
            if plot not in plots.__all__:
                raise KeyError(f"figure {name}: no plot {plot!r} in nriqa_lib.reporting.plots (known: "
                               f"{', '.join(plots.__all__)})")
            plots.save(getattr(plots, plot)(*args, **kwargs), fdir / f"{name}.png")
    if not any(kind == "figure" for kind, *_ in res.files):
        # an empty folder is a DVC output DVC warns about ("'results/t6/figures' is empty") at every repro: say why
        atomic_write_text(fdir / "README.md", "No figure with these params: this table has no rows to draw (see its "
                          "tables/ and its notebook).\n")
    if res.metrics is not None:
        write_metrics_json(out / "metrics.json", res.metrics)
    return res.frames
