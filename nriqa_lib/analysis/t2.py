"""T2: the activation ablation (P1) and its cross-dataset direction (predictions of the cross stage)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..backbones import pretrained
from ..core.config import T2
from ..core.paths import load_cross, load_predictions, load_split_files
from ..reporting.export import format_pm, write_result
from .compare import METRICS, compare, family_note, protocol, split_metrics, summarize_groups, weights_label
from .design import Design, cross_designs, design_note, designs
from .inputs import TableInputs
from .pooled import pooled_outputs
from .result import Result

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t2.heads", "t2.reference", "t2.cross", "stats")
__all__ = ["PARAMS", "compute", "t2_activations"]


def compute(pred: pd.DataFrame, design: dict[str, Design], run: TableInputs, t2: T2, cross: pd.DataFrame | None = None,
            cross_design: dict[str, Design] | None = None) -> Result:
    """T2: the activation ablation per backbone and dataset from the heads stage's predictions ``pred``, tests vs
    t2.reference (Holm family: one head vs the reference over every dataset x backbone, i.e. one P1 claim); plus
    cross-dataset from the cross stage's predictions ``cross`` (pairs ``source->target`` in ``cross_design``)."""
    res = Result(label=weights_label(run.pretrained))
    heads = list(dict.fromkeys([t2.reference, *t2.heads]))
    pred = pred[pred["head"].isin(heads) & (pred["part"] == "test")]
    rows = split_metrics(pred, ["dataset", "backbone", "head"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone", "head"], design, METRICS, run.stats.n_boot,
                            run.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
    tests = compare(rows, pred, ["dataset", "backbone"], "head", t2.reference, design, ["a"], run.stats.alpha,
                    run.stats.n_boot, run.stats.seed)
    fam = f"one head vs {t2.reference} across all datasets x backbones (one claim)"
    res.table("t2_activations", table, f"T2: activation ablation, test SRCC mean ± sd over splits "
                                       f"({protocol(run.select_on)})" + design_note(design))
    res.table("t2_tests", tests, f"T2: each head vs {t2.reference} (SRCC). " + family_note(tests, fam, run.stats.alpha))
    pool = pooled_outputs(res, run, tests, "a", ["dataset", "backbone"], design, "t2", f"T2 each head vs {t2.reference}")
    res.csv("t2_rows", rows)
    res.csv("t2_summary", summ)
    out = {}
    if cross is not None:
        cpred = cross.assign(part="test")
        cr = split_metrics(cpred, ["dataset", "backbone", "head"])
        csum = summarize_groups(cr, cpred, ["dataset", "backbone", "head"], cross_design, METRICS, run.stats.n_boot,
                                run.stats.seed)
        # every source split's head is tested on the same whole target set: the two-level bootstrap
        # (source splits, then target images) carries both sources of variance
        ctests = compare(cr, cpred, ["dataset", "backbone"], "head", t2.reference, cross_design, ["a"], run.stats.alpha,
                         run.stats.n_boot, run.stats.seed)
        sel = ("epoch chosen on the source split's val part" if run.select_on == "val"
               else "epoch chosen on the target set itself (optimistic, as P1)")
        ctable = format_pm(csum[csum["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
        res.table("t2_cross", ctable,
                  f"T2 cross-dataset: train on the first dataset (train part of each split), test on all of the "
                  f"second; SRCC mean ± sd over source splits ({sel}); 95% CIs in t2_cross_summary.csv: two-level "
                  f"bootstrap (source splits, then target images)")
        res.table("t2_cross_tests", ctests, f"T2 cross-dataset tests vs {t2.reference} (paired two-level "
                                            f"bootstrap). " + family_note(ctests, fam, run.stats.alpha))
        res.csv("t2_cross_summary", csum)
        cpool = pooled_outputs(res, run, ctests, "a", ["dataset", "backbone"], None, "t2_cross",
                               f"T2 cross-dataset, each head vs {t2.reference}")
        out = {"cross_rows": cr, "cross_summary": csum, "cross_tests": ctests, "cross_table": ctable,
               "cross_pooled": cpool}
    res.metrics = {f"{d}/{b}": g.set_index("head")["mean"].to_dict()
                   for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])}
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, **out}
    return res


def t2_activations(out_dir: str | Path, run: TableInputs, t2: T2) -> dict[str, pd.DataFrame]:
    """T2 as its notebook runs it: the heads and cross stages' predictions in, :func:`compute`, the files written
    (the one function of this module that reads or writes files); returns the frames."""
    backbones = pretrained(run.backbones)
    pairs = [(a, b) for a, b in t2.cross if a in run.datasets and b in run.datasets]
    cross = load_cross(pairs, backbones) if pairs else None
    cdes = cross_designs(pairs, load_split_files(list(dict.fromkeys(a for a, _ in pairs)))) if pairs else None
    return write_result(out_dir, compute(load_predictions(run.datasets, backbones),
                                         designs(load_split_files(run.datasets)), run, t2, cross, cdes))
