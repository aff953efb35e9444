"""T1: the backbone comparison (P1) with the identical head."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.paths import load_predictions, load_split_files
from ..reporting import plots
from ..reporting.export import format_pm, write_result
from .compare import METRICS, ci_label, compare, family_note, protocol, split_metrics, summarize_groups, weights_label
from .design import Design, design_note, designs
from .inputs import TableInputs
from .pooled import pooled_outputs
from .result import Result

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last", "t1.head",
          "stats")
__all__ = ["PARAMS", "compute", "t1_backbones"]


def compute(pred: pd.DataFrame, design: dict[str, Design], run: TableInputs, head: str,
            last: pd.DataFrame | None = None) -> Result:
    """T1: every backbone of ``run`` with the identical ``head`` (t1.head), per dataset, from the heads stage's
    predictions ``pred`` (``last``: those of the last epoch, with ``run.report_last``); pairwise tests between
    backbones (Holm family: all backbone pairs on one dataset)."""
    res = Result(label=weights_label(run.pretrained))
    pred = pred[(pred["head"] == head) & (pred["part"] == "test")]
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], design, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = compare(rows, pred, ["dataset"], "backbone", None, design, ["dataset"], run.stats.alpha, run.stats.n_boot,
                    run.stats.seed)
    cap = (f"T1: backbones with the identical {head} head; test SRCC and raw PLCC, mean ± sd over splits "
           f"({protocol(run.select_on)}; the 95% CIs in t1_summary.csv are {', '.join(sorted(summ['ci_kind'].unique()))}).")
    res.table("t1_backbones", table, cap + design_note(design))
    res.table("t1_tests", tests, "T1 pairwise tests (SRCC). " + family_note(tests, "all backbone pairs on one dataset",
                                                                           run.stats.alpha))
    pool = pooled_outputs(res, run, tests.assign(pair=tests["a"] + " - " + tests["b"]) if len(tests) else tests, "pair",
                          ["dataset"], design, "t1", "T1 backbone pairs")
    res.csv("t1_rows", rows)
    res.csv("t1_summary", summ)
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
    if last is not None:     # P1 tracks the best test epoch but writes the last one's results: both, labelled
        last = last[(last["head"] == head) & (last["part"] == "test")]
        lrows = split_metrics(last, ["dataset", "backbone"])
        lsumm = summarize_groups(lrows, last, ["dataset", "backbone"], design, METRICS, run.stats.n_boot, run.stats.seed)
        last_table = format_pm(lsumm, ["dataset"], ["metric", "backbone"])
        res.table("t1_backbones_last_epoch", last_table,
                  f"T1 at the LAST epoch (what P1's code writes; the table t1_backbones is {protocol(run.select_on)}): "
                  f"{head} head, test SRCC and raw PLCC, mean ± sd over splits." + design_note(design))
        res.csv("t1_rows_last_epoch", lrows)
        res.csv("t1_summary_last_epoch", lsumm)
        res.frames["table_last_epoch"] = last_table
    res.figure("t1_srcc", lambda: plots.bars_with_ci(summ, "backbone", None, "dataset", ci_label=ci_label(summ)))
    res.metrics = {d: {b: g.set_index("metric")["mean"].to_dict() for b, g in s.groupby("backbone")}
                   for d, s in summ.groupby("dataset")}
    return res


def t1_backbones(out_dir: str | Path, run: TableInputs, head: str) -> dict[str, pd.DataFrame]:
    """T1 as its notebook runs it: the heads stage's predictions in, :func:`compute`, the files written (the one
    function of this module that reads or writes files); returns the frames."""
    last = load_predictions(run.datasets, run.backbones, last=True) if run.report_last else None
    return write_result(out_dir, compute(load_predictions(run.datasets, run.backbones),
                                         designs(load_split_files(run.datasets)), run, head, last))
