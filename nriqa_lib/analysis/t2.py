"""T2: the activation ablation (P1) and its cross-dataset direction (predictions of the cross stage)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..backbones import pretrained
from ..core.config import T2
from ..core.paths import load_cross, load_predictions
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (METRICS, TableInputs, compare, cross_designs, design_note, designs, export, family_note,
                     pooled_outputs, protocol, split_metrics, summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t2.heads", "t2.reference", "t2.cross", "stats")
__all__ = ["PARAMS", "t2_activations"]


def t2_activations(out_dir: str | Path, run: TableInputs, t2: T2) -> dict[str, pd.DataFrame]:
    """T2: the activation ablation per backbone and dataset, tests vs t2.reference (Holm family: one head
    vs the reference over every dataset x backbone, i.e. one P1 claim); plus cross-dataset."""
    out, tdir, fdir = table_dirs(out_dir)
    backbones = pretrained(run.backbones)
    pred = load_predictions(run.datasets, backbones)
    heads = list(dict.fromkeys([t2.reference, *t2.heads]))
    pred = pred[pred["head"].isin(heads) & (pred["part"] == "test")]
    des = designs(run.datasets)
    rows = split_metrics(pred, ["dataset", "backbone", "head"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone", "head"], des, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
    tests = compare(rows, pred, ["dataset", "backbone"], "head", t2.reference, des, ["a"], run.stats.alpha,
                    run.stats.n_boot, run.stats.seed)
    fam = f"one head vs {t2.reference} across all datasets x backbones (one claim)"
    export(run, table, tdir, "t2_activations", f"T2: activation ablation, test SRCC mean ± sd over splits ({protocol(run.select_on)})" + design_note(des))
    export(run, tests, tdir, "t2_tests", f"T2: each head vs {t2.reference} (SRCC). " + family_note(tests, fam, run.stats.alpha))
    pool = pooled_outputs(run, tests, "a", ["dataset", "backbone"], des, tdir, fdir, "t2",
                          f"T2 each head vs {t2.reference}")
    write_csv(rows, tdir / "t2_rows.csv")
    write_csv(summ, tdir / "t2_summary.csv")
    pairs = [(a, b) for a, b in t2.cross if a in run.datasets and b in run.datasets]
    cross = {}
    if pairs:
        cpred = load_cross(pairs, backbones).assign(part="test")
        cr = split_metrics(cpred, ["dataset", "backbone", "head"])
        cdes = cross_designs(pairs)
        csum = summarize_groups(cr, cpred, ["dataset", "backbone", "head"], cdes, METRICS, run.stats.n_boot, run.stats.seed)
        # every source split's head is tested on the same whole target set: the two-level bootstrap
        # (source splits, then target images) carries both sources of variance
        ctests = compare(cr, cpred, ["dataset", "backbone"], "head", t2.reference, cdes, ["a"], run.stats.alpha,
                         run.stats.n_boot, run.stats.seed)
        sel = ("epoch chosen on the source split's val part" if run.select_on == "val"
               else "epoch chosen on the target set itself (optimistic, as P1)")
        ctable = format_pm(csum[csum["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
        export(run, ctable, tdir, "t2_cross",
                     f"T2 cross-dataset: train on the first dataset (train part of each split), test on all of the "
                     f"second; SRCC mean ± sd over source splits ({sel}); 95% CIs in t2_cross_summary.csv: two-level "
                     f"bootstrap (source splits, then target images)")
        export(run, ctests, tdir, "t2_cross_tests", f"T2 cross-dataset tests vs {t2.reference} (paired two-level "
                     f"bootstrap). " + family_note(ctests, fam, run.stats.alpha))
        write_csv(csum, tdir / "t2_cross_summary.csv")
        cpool = pooled_outputs(run, ctests, "a", ["dataset", "backbone"], None, tdir, fdir, "t2_cross",
                               f"T2 cross-dataset, each head vs {t2.reference}")
        cross = {"cross_rows": cr, "cross_summary": csum, "cross_tests": ctests,
                 "cross_table": ctable, "cross_pooled": cpool}
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("head")["mean"].to_dict()
                                              for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, **cross}
