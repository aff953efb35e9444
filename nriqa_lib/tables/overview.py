"""The data overview: per dataset its size, MOS range, split sizes, MOS histograms and sample images."""
from __future__ import annotations


import numpy as np
import pandas as pd

from ..core.paths import load_split_files
from ..data.manifest import Manifest
from ..analysis.result import Result
from ..analysis.table import Table

PARAMS = ("data.datasets", "data.roots", "data.manifests", "data.limit", "data.limit_seed", "splits.schemes")
__all__ = ["PARAMS", "TABLE", "compute", "data_overview"]


def compute(manifests: dict[str, Manifest], splits: dict[str, pd.DataFrame], schemes: dict[str, str]) -> Result:
    """Per dataset of ``manifests`` (name -> its manifest, in the run's order): size, MOS range, split sizes (its
    ``splits`` rows; scheme from ``schemes``, splits.schemes); MOS histograms; sample images across quality."""
    res = Result()
    tables, rows = {}, []
    for d, m in manifests.items():
        tables[d] = m.table
        sp = splits[d]
        sizes = sp.groupby(["split", "part"]).size().unstack(fill_value=0).mean().round(1)
        rows.append({"dataset": d, "images": len(m.table), "groups": m.table["group"].nunique(),
                     "mos_min": m.table["mos"].min(), "mos_max": m.table["mos"].max(),
                     "splits": sp["split"].nunique(), "scheme": schemes.get(d, "random"),
                     **{f"n_{k}": v for k, v in sizes.items()}})
        q = m.table.sort_values("mos", kind="stable")   # ties: numpy's SIMD quicksort orders them by CPU
        pick = q.iloc[np.linspace(0, len(q) - 1, 5).round().astype(int)]
        res.figure(f"samples_{d}", "sample_grid", [m.root / i for i in pick["image"]],
                   [f"MOS {v:.2f}" for v in pick["mos"]])
    summary = pd.DataFrame(rows).set_index("dataset").round(3)
    res.table("datasets", summary, "Datasets, MOS range (normalised) and mean split sizes")
    res.figure("mos_histograms", "mos_histograms", tables)
    res.frames = {"summary": summary}
    return res


def data_overview(manifests: dict[str, Manifest], schemes: dict[str, str]) -> Result:
    """The overview as its notebook runs it: the split files in, :func:`compute` on them; the one function of
    this module that reads files, and none writes (the notebook writes the Result:
    ``reporting.export.write_result``)."""
    return compute(manifests, load_split_files(list(manifests)), schemes)


TABLE = Table(
    name="data_overview", folder="data_overview", desc="every dataset's size, MOS range, splits and sample images",
    params=PARAMS, tag="limit-${data.limit}", deps=("data_manifests", "splits"),
    metrics=False, whole_folder=True)
