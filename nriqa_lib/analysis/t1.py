"""T1: the backbone comparison (P1) with the identical head."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.paths import load_predictions
from ..reporting import plots
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (METRICS, TableInputs, ci_label, compare, design_note, designs, export, family_note,
                     pooled_outputs, protocol, split_metrics, summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last", "t1.head",
          "stats")
__all__ = ["PARAMS", "t1_backbones"]


def t1_backbones(out_dir: str | Path, run: TableInputs, head: str) -> dict[str, pd.DataFrame]:
    """T1: every backbone of ``run`` with the identical ``head`` (t1.head), per dataset; pairwise tests between backbones
    (Holm family: all backbone pairs on one dataset)."""
    out, tdir, fdir = table_dirs(out_dir)
    pred = load_predictions(run.datasets, run.backbones)
    pred = pred[(pred["head"] == head) & (pred["part"] == "test")]
    des = designs(run.datasets)
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], des, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = compare(rows, pred, ["dataset"], "backbone", None, des, ["dataset"], run.stats.alpha, run.stats.n_boot,
                    run.stats.seed)
    cap = (f"T1: backbones with the identical {head} head; test SRCC and raw PLCC, mean ± sd over splits "
           f"({protocol(run.select_on)}; the 95% CIs in t1_summary.csv are {', '.join(sorted(summ['ci_kind'].unique()))}).")
    export(run, table, tdir, "t1_backbones", cap + design_note(des))
    export(run, tests, tdir, "t1_tests", "T1 pairwise tests (SRCC). " + family_note(tests, "all backbone pairs on one dataset", run.stats.alpha))
    pool = pooled_outputs(run, tests.assign(pair=tests["a"] + " - " + tests["b"]) if len(tests) else tests, "pair",
                          ["dataset"], des, tdir, fdir, "t1", "T1 backbone pairs")
    write_csv(rows, tdir / "t1_rows.csv")
    write_csv(summ, tdir / "t1_summary.csv")
    if run.report_last:     # P1 tracks the best test epoch but writes the last one's results: both, labelled
        last = load_predictions(run.datasets, run.backbones, last=True)
        last = last[(last["head"] == head) & (last["part"] == "test")]
        lrows = split_metrics(last, ["dataset", "backbone"])
        lsumm = summarize_groups(lrows, last, ["dataset", "backbone"], des, METRICS, run.stats.n_boot, run.stats.seed)
        last_table = format_pm(lsumm, ["dataset"], ["metric", "backbone"])
        export(run, last_table, tdir, "t1_backbones_last_epoch",
               f"T1 at the LAST epoch (what P1's code writes; the table t1_backbones is {protocol(run.select_on)}): "
               f"{head} head, test SRCC and raw PLCC, mean ± sd over splits." + design_note(des))
        write_csv(lrows, tdir / "t1_rows_last_epoch.csv")
        write_csv(lsumm, tdir / "t1_summary_last_epoch.csv")
    plots.save(plots.bars_with_ci(summ, "backbone", None, "dataset", ci_label=ci_label(summ)), fdir / "t1_srcc.png")
    write_metrics_json(out / "metrics.json", {d: {b: g.set_index("metric")["mean"].to_dict()
                                                  for b, g in s.groupby("backbone")}
                                              for d, s in summ.groupby("dataset")})
    res = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
    if run.report_last:
        res["table_last_epoch"] = last_table
    return res
