"""Tables and metrics to files: CSV / Markdown / LaTeX written atomically, DVC metrics JSON, 'mean ± sd' cells."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..io import atomic_write_text

__all__ = ["format_pm", "export_table", "write_metrics_json", "table_dirs"]


# the label of every table and report of a random-weights run (features.pretrained: false, the smoke profile)
RANDOM_WEIGHTS = "random weights: checks the code path, not results"

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




def table_dirs(out_dir: str | Path) -> tuple[Path, Path, Path]:
    """(out_dir, out_dir/tables, out_dir/figures), created."""
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return out, out / "tables", out / "figures"
