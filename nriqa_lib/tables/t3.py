"""T3: learnable activation selection (P1's B_Gated, our K-way) vs the best fixed activation."""
from __future__ import annotations


import numpy as np
import pandas as pd

from ..backbones.registry import pretrained
from ..core.config import T2
from ..core.paths import load_predictions, load_shares, load_split_files
from ..heads.registry import SELECTION_HEADS, get_predictor
from ..analysis.compare import compare_levels, family_note, protocol, split_metrics, weights_label
from ..analysis.design import Design, design_note, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import Claims, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t2.heads", "t2.reference", "stats")
__all__ = ["PARAMS", "TABLE", "compute", "t3_selection", "best_fixed"]


def best_fixed(pred: pd.DataFrame, fixed: list[str], select_on: str) -> pd.DataFrame:
    """Per dataset/backbone, the fixed-activation head with the highest mean SRCC on ``select_on`` (val in
    the clean protocol, so the test numbers of T3 stay untouched by the choice)."""
    sel = pred[pred["head"].isin(fixed) & (pred["part"] == select_on)]
    m = split_metrics(sel, ["dataset", "backbone", "head"], part=select_on)
    m = m[m["metric"] == "srcc"].groupby(["dataset", "backbone", "head"], as_index=False)["value"].mean()
    best = m.loc[m.groupby(["dataset", "backbone"])["value"].idxmax(), ["dataset", "backbone", "head", "value"]]
    return best.rename(columns={"head": "best_fixed_head", "value": f"best_fixed_head_{select_on}_srcc"})


def compute(pred: pd.DataFrame, shares: pd.DataFrame, design: dict[str, Design], inputs: TableInputs, t2: T2) -> Result:
    """T3: B_Gated and the K-way selection vs the best fixed activation of T2, chosen per dataset/backbone by
    mean SRCC on val (on test only under the paper profile's select_on: test), from the heads stage's predictions
    ``pred``, with per-channel selection ``shares``. Holm family: one selection head vs best fixed across datasets x
    backbones."""
    res = Result(label=weights_label(inputs.pretrained))
    fixed = [h for h in dict.fromkeys([t2.reference, *t2.heads]) if get_predictor(h).fixed_activation]
    best = best_fixed(pred, fixed, inputs.select_on)
    test = pred[pred["part"] == "test"].merge(best[["dataset", "backbone", "best_fixed_head"]], on=["dataset", "backbone"])
    keep = test[test["head"].isin(SELECTION_HEADS) | (test["head"] == test["best_fixed_head"])].copy()
    keep["role"] = np.where(keep["head"].isin(SELECTION_HEADS), keep["head"], "best fixed")
    c = compare_levels(keep, ["dataset", "backbone"], "role", "best fixed", design, inputs)
    rows, ksum, tests = c.rows, c.summary, c.tests
    table = c.table.join(best.set_index(["dataset", "backbone"]))
    share_tbl = shares.groupby(["dataset", "backbone", "head", "layer", "candidate"])["share"].agg(["mean", "std"]).round(3)
    how = "mean val SRCC" if inputs.select_on == "val" else "mean test SRCC (paper profile: optimistic)"
    res.table("t3_selection", table, f"T3: learnable activation selection vs the best fixed activation, test "
                              f"SRCC mean ± sd over splits; best fixed = the T2 head (best_fixed_head) with the "
                              f"highest {how} per dataset/backbone ({protocol(inputs.select_on)})"
                              + design_note(design))
    res.table("t3_tests", tests, "T3: selection heads vs best fixed (SRCC). " + family_note(
        tests, "one selection head vs best fixed across all datasets x backbones", inputs.stats.alpha))
    res.table("t3_shares", share_tbl, "T3: share of channels choosing each candidate (mean, sd over splits)")
    res.csv("t3_summary", ksum)
    pool = pooled_outputs(res, inputs, tests, "a", ["dataset", "backbone"], design, "t3",
                   "T3 each selection head vs best fixed")
    res.figure("t3_shares", "selection_shares_plot", shares)
    res.metrics = {f"{d}/{b}": g.set_index("role")["mean"].to_dict()
                   for (d, b), g in ksum[ksum["metric"] == "srcc"].groupby(["dataset", "backbone"])}
    res.frames = {"rows": rows, "summary": ksum, "table": table, "tests": tests, "shares": share_tbl,
                  "best_fixed": best, "pooled": pool}
    return res


def t3_selection(inputs: TableInputs, t2: T2) -> Result:
    """T3 as its notebook runs it: the heads stage's predictions and selection shares in, :func:`compute` on
    them; the one function of this module that reads files, and none writes (the notebook writes the Result:
    ``reporting.export.write_result``)."""
    backbones = pretrained(inputs.backbones)
    return compute(load_predictions(inputs.datasets, backbones), load_shares(inputs.datasets, backbones),
                   designs(load_split_files(inputs.datasets)), inputs, t2)


TABLE = Table(
    name="t3", folder="t3", desc="T3 (P1 + ours): learnable activation selection vs the best fixed head",
    params=PARAMS, tag="boot-${stats.n_boot}", deps=("results/heads", "splits"),
    shown=("t3_selection", "t3_tests"), pooled_shown=("t3_pooled",), figures=("t3_forest", "t3_shares"),
    plots=("t3_shares",),
    claims=(Claims(tests="t3_tests", pooled="t3_pooled",
                   names={"B_Gated": "P1: B_Gated beats the best fixed activation",
                          "kway": "ours: K-way selection beats the best fixed activation"},
                   default="ours: {key} beats the best fixed activation"),))
