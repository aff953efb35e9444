"""T1: the backbone comparison (P1) with the identical head."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paths import load_predictions
from ..reporting import plots
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (design_note, METRICS, ci_label, compare, designs, export, family_note, pooled_outputs, protocol, split_metrics,
                     summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last", "t1.head",
          "stats")
__all__ = ["PARAMS", "t1_backbones"]


def t1_backbones(p, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T1: every backbone with the identical head (t1.head), per dataset; pairwise tests between backbones
    (Holm family: all backbone pairs on one dataset)."""
    out, tdir, fdir = table_dirs(out_dir)
    pred = load_predictions(p.data.datasets, p.features.backbones)
    pred = pred[(pred["head"] == p.t1.head) & (pred["part"] == "test")]
    des = designs(p.data.datasets)
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], des, METRICS, p.stats.n_boot, p.stats.seed)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = compare(rows, pred, ["dataset"], "backbone", None, des, ["dataset"], p.stats.alpha, p.stats.n_boot,
                    p.stats.seed)
    cap = (f"T1: backbones with the identical {p.t1.head} head; test SRCC and raw PLCC, mean ± sd over splits "
           f"({protocol(p.train.select_on)}; the 95% CIs in t1_summary.csv are {', '.join(sorted(summ['ci_kind'].unique()))}).")
    export(p, table, tdir, "t1_backbones", cap + design_note(des))
    export(p, tests, tdir, "t1_tests", "T1 pairwise tests (SRCC). " + family_note(tests, "all backbone pairs on one dataset", p.stats.alpha))
    pool = pooled_outputs(p, tests.assign(pair=tests["a"] + " - " + tests["b"]) if len(tests) else tests, "pair",
                          ["dataset"], des, tdir, fdir, "t1", "T1 backbone pairs")
    write_csv(rows, tdir / "t1_rows.csv")
    write_csv(summ, tdir / "t1_summary.csv")
    if p.train.report_last:     # P1 tracks the best test epoch but writes the last one's results: both, labelled
        last = load_predictions(p.data.datasets, p.features.backbones, last=True)
        last = last[(last["head"] == p.t1.head) & (last["part"] == "test")]
        lrows = split_metrics(last, ["dataset", "backbone"])
        lsumm = summarize_groups(lrows, last, ["dataset", "backbone"], des, METRICS, p.stats.n_boot, p.stats.seed)
        last_table = format_pm(lsumm, ["dataset"], ["metric", "backbone"])
        export(p, last_table, tdir, "t1_backbones_last_epoch",
               f"T1 at the LAST epoch (what P1's code writes; the table t1_backbones is {protocol(p.train.select_on)}): "
               f"{p.t1.head} head, test SRCC and raw PLCC, mean ± sd over splits." + design_note(des))
        write_csv(lrows, tdir / "t1_rows_last_epoch.csv")
        write_csv(lsumm, tdir / "t1_summary_last_epoch.csv")
    plots.save(plots.bars_with_ci(summ, "backbone", None, "dataset", ci_label=ci_label(summ)), fdir / "t1_srcc.png")
    write_metrics_json(out / "metrics.json", {d: {b: g.set_index("metric")["mean"].to_dict()
                                                  for b, g in s.groupby("backbone")}
                                              for d, s in summ.groupby("dataset")})
    res = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
    if p.train.report_last:
        res["table_last_epoch"] = last_table
    return res
