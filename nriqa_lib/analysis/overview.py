"""The data overview: per dataset its size, MOS range, split sizes, MOS histograms and sample images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import Manifest
from ..data.splits import load_splits
from ..core.paths import splits_path
from ..reporting import plots
from ..reporting.export import export_table, table_dirs

PARAMS = ("data.datasets", "data.roots", "data.manifests", "data.limit", "data.limit_seed", "splits.schemes")
__all__ = ["PARAMS", "data_overview"]


def data_overview(out_dir: str | Path, manifests: dict[str, Manifest], schemes: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Per dataset of ``manifests`` (name -> its manifest, in the run's order): size, MOS range, split sizes (scheme from
    ``schemes``, splits.schemes); MOS histograms; sample images across quality."""
    out, tdir, fdir = table_dirs(out_dir)
    tables, rows = {}, []
    for d, m in manifests.items():
        tables[d] = m.table
        sp = load_splits(splits_path(d))
        sizes = sp.groupby(["split", "part"]).size().unstack(fill_value=0).mean().round(1)
        rows.append({"dataset": d, "images": len(m.table), "groups": m.table["group"].nunique(),
                     "mos_min": m.table["mos"].min(), "mos_max": m.table["mos"].max(),
                     "splits": sp["split"].nunique(), "scheme": schemes.get(d, "random"),
                     **{f"n_{k}": v for k, v in sizes.items()}})
        q = m.table.sort_values("mos")
        pick = q.iloc[np.linspace(0, len(q) - 1, 5).round().astype(int)]
        plots.save(plots.sample_grid([m.root / i for i in pick["image"]], [f"MOS {v:.2f}" for v in pick["mos"]]),
                   fdir / f"samples_{d}.png")
    summary = pd.DataFrame(rows).set_index("dataset").round(3)
    export_table(summary, tdir, "datasets", "Datasets, MOS range (normalised) and mean split sizes")
    plots.save(plots.mos_histograms(tables), fdir / "mos_histograms.png")
    return {"summary": summary}
