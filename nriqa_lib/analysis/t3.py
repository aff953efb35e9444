"""T3: learnable activation selection (P1's B_Gated, our K-way) vs the best fixed activation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..backbones import pretrained
from ..core.config import T2
from ..core.paths import load_predictions, load_shares
from ..heads import SELECTION_HEADS, get_predictor
from ..reporting import plots
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (METRICS, TableInputs, compare, design_note, designs, export, family_note, pooled_outputs,
                     protocol, split_metrics, summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t2.heads", "t2.reference", "stats")
__all__ = ["PARAMS", "t3_selection", "best_fixed"]


def best_fixed(pred: pd.DataFrame, fixed: list[str], select_on: str) -> pd.DataFrame:
    """Per dataset/backbone, the fixed-activation head with the highest mean SRCC on ``select_on`` (val in
    the clean protocol, so the test numbers of T3 stay untouched by the choice)."""
    sel = pred[pred["head"].isin(fixed) & (pred["part"] == select_on)]
    m = split_metrics(sel, ["dataset", "backbone", "head"], part=select_on)
    m = m[m["metric"] == "srcc"].groupby(["dataset", "backbone", "head"], as_index=False)["value"].mean()
    best = m.loc[m.groupby(["dataset", "backbone"])["value"].idxmax(), ["dataset", "backbone", "head", "value"]]
    return best.rename(columns={"head": "best_fixed_head", "value": f"best_fixed_head_{select_on}_srcc"})


def t3_selection(out_dir: str | Path, run: TableInputs, t2: T2) -> dict[str, pd.DataFrame]:
    """T3: B_Gated and the K-way selection vs the best fixed activation of T2, chosen per dataset/backbone by
    mean SRCC on val (on test only under the paper profile's select_on: test), with per-channel selection
    shares. Holm family: one selection head vs best fixed across datasets x backbones."""
    out, tdir, fdir = table_dirs(out_dir)
    backbones = pretrained(run.backbones)
    pred = load_predictions(run.datasets, backbones)
    fixed = [h for h in dict.fromkeys([t2.reference, *t2.heads]) if get_predictor(h).fixed_activation]
    best = best_fixed(pred, fixed, run.select_on)
    test = pred[pred["part"] == "test"].merge(best[["dataset", "backbone", "best_fixed_head"]], on=["dataset", "backbone"])
    keep = test[test["head"].isin(SELECTION_HEADS) | (test["head"] == test["best_fixed_head"])].copy()
    keep["role"] = np.where(keep["head"].isin(SELECTION_HEADS), keep["head"], "best fixed")
    des = designs(run.datasets)
    rows = split_metrics(keep, ["dataset", "backbone", "role"])
    ksum = summarize_groups(rows, keep, ["dataset", "backbone", "role"], des, METRICS, run.stats.n_boot, run.stats.seed)
    tests = compare(rows, keep, ["dataset", "backbone"], "role", "best fixed", des, ["a"], run.stats.alpha,
                    run.stats.n_boot, run.stats.seed)
    table = format_pm(ksum[ksum["metric"] == "srcc"], ["dataset", "backbone"], ["role"]).join(best.set_index(["dataset", "backbone"]))
    shares = load_shares(run.datasets, backbones)
    share_tbl = shares.groupby(["dataset", "backbone", "head", "layer", "candidate"])["share"].agg(["mean", "std"]).round(3)
    how = "mean val SRCC" if run.select_on == "val" else "mean test SRCC (paper profile: optimistic)"
    export(run, table, tdir, "t3_selection", f"T3: learnable activation selection vs the best fixed activation, test "
                 f"SRCC mean ± sd over splits; best fixed = the T2 head (best_fixed_head) with the highest {how} per "
                 f"dataset/backbone "
                 f"({protocol(run.select_on)})" + design_note(des))
    export(run, tests, tdir, "t3_tests", "T3: selection heads vs best fixed (SRCC). "
                 + family_note(tests, "one selection head vs best fixed across all datasets x backbones", run.stats.alpha))
    export(run, share_tbl, tdir, "t3_shares", "T3: share of channels choosing each candidate (mean, sd over splits)")
    write_csv(ksum, tdir / "t3_summary.csv")
    pool = pooled_outputs(run, tests, "a", ["dataset", "backbone"], des, tdir, fdir, "t3",
                          "T3 each selection head vs best fixed")
    plots.save(plots.selection_shares_plot(shares), fdir / "t3_shares.png")
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("role")["mean"].to_dict()
                                              for (d, b), g in ksum[ksum["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": ksum, "table": table, "tests": tests, "shares": share_tbl, "best_fixed": best,
            "pooled": pool}
