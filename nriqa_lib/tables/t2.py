"""T2: the activation ablation (P1) and its cross-dataset direction (predictions of the cross stage)."""
from __future__ import annotations


import pandas as pd

from ..backbones.registry import pretrained
from ..core.config import T2
from ..core.paths import load_cross, load_predictions, load_split_files
from ..analysis.compare import compare_levels, family_note, protocol, weights_label
from ..analysis.design import Design, cross_designs, design_note, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import Claims, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t2", "stats")
__all__ = ["PARAMS", "TABLE", "compute", "t2_activations"]


def compute(pred: pd.DataFrame, design: dict[str, Design], inputs: TableInputs, t2: T2, cross: pd.DataFrame | None = None,
            cross_design: dict[str, Design] | None = None) -> Result:
    """T2: the activation ablation per backbone and dataset from the heads stage's predictions ``pred``, tests vs
    t2.reference (Holm family: one head vs the reference over every dataset x backbone, i.e. one P1 claim); plus
    cross-dataset from the cross stage's predictions ``cross`` (pairs ``source->target`` in ``cross_design``)."""
    res = Result(label=weights_label(inputs.pretrained))
    heads = list(dict.fromkeys([t2.reference, *t2.heads]))
    pred = pred[pred["head"].isin(heads) & (pred["part"] == "test")]
    c = compare_levels(pred, ["dataset", "backbone"], "head", t2.reference, design, inputs)
    rows, summ, table, tests = c.rows, c.summary, c.table, c.tests
    fam = f"one head vs {t2.reference} across all datasets x backbones (one claim)"
    res.table("t2_activations", table, f"T2: activation ablation, test SRCC mean ± sd over splits "
                                f"({protocol(inputs.select_on)})" + design_note(design))
    res.table("t2_tests", tests, f"T2: each head vs {t2.reference} (SRCC). " + family_note(tests, fam, inputs.stats.alpha))
    pool = pooled_outputs(res, inputs, tests, "a", ["dataset", "backbone"], design, "t2", f"T2 each head vs {t2.reference}")
    res.csv("t2_rows", rows)
    res.csv("t2_summary", summ)
    out = {}
    if cross is not None:
        cpred = cross.assign(part="test")
        # every source split's head is tested on the same whole target set: the two-level bootstrap
        # (source splits, then target images) carries both sources of variance
        cc = compare_levels(cpred, ["dataset", "backbone"], "head", t2.reference, cross_design, inputs)
        cr, csum, ctable, ctests = cc.rows, cc.summary, cc.table, cc.tests
        sel = ("epoch chosen on the source split's val part" if inputs.select_on == "val"
               else "epoch chosen on the target set itself (optimistic, as P1)")
        res.table("t2_cross", ctable,
                  f"T2 cross-dataset: train on the first dataset (train part of each split), test on all of the "
                  f"second; SRCC mean ± sd over source splits ({sel}); 95% CIs in t2_cross_summary.csv: two-level "
                  f"bootstrap (source splits, then target images)")
        res.table("t2_cross_tests", ctests, f"T2 cross-dataset tests vs {t2.reference} (paired two-level "
                      f"bootstrap). " + family_note(ctests, fam, inputs.stats.alpha))
        res.csv("t2_cross_summary", csum)
        cpool = pooled_outputs(res, inputs, ctests, "a", ["dataset", "backbone"], None, "t2_cross",
                        f"T2 cross-dataset, each head vs {t2.reference}")
        out = {"cross_rows": cr, "cross_summary": csum, "cross_tests": ctests, "cross_table": ctable,
               "cross_pooled": cpool}
    res.metrics = {f"{d}/{b}": g.set_index("head")["mean"].to_dict()
                   for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])}
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, **out}
    return res


def t2_activations(inputs: TableInputs, t2: T2) -> Result:
    """T2 as its notebook runs it: the heads and cross stages' predictions in, :func:`compute` on them; the one
    function of this module that reads files, and none writes (the notebook writes the Result:
    ``reporting.export.write_result``)."""
    backbones = pretrained(inputs.backbones)
    pairs = [(a, b) for a, b in t2.cross if a in inputs.datasets and b in inputs.datasets]
    cross = load_cross(pairs, backbones) if pairs else None
    cdes = cross_designs(pairs, load_split_files(list(dict.fromkeys(a for a, _ in pairs)))) if pairs else None
    return compute(load_predictions(inputs.datasets, backbones),
                   designs(load_split_files(inputs.datasets)), inputs, t2, cross, cdes)


# P1 finds no difference between GELU and ReLU heads; "no difference" is tested as equivalence within +-0.02 SRCC
# (TOST). Why 0.02: half of P1's headline activation effect (sigmoid vs ReLU, ~0.04 SRCC here), and about the sd
# of one head's SRCC over training seeds on one CLIVE split (0.018, docs/measured/aa_level.json): a difference
# within it is smaller than what P1 calls an effect and than what reseeding one head moves.
GELU_MARGIN = 0.02

TABLE = Table(
    name="t2", folder="t2", desc="T2 (P1): the head's activation, in and across datasets", params=PARAMS,
    tag="ref-${t2.reference}", deps=("results/heads", "results/cross", "splits"),
    shown=("t2_activations", "t2_tests", "t2_cross"), pooled_shown=("t2_pooled", "t2_cross_pooled"),
    figures=("t2_forest", "t2_cross_forest"), plots=("t2_forest",),
    claims=(Claims(tests="t2_tests", pooled="t2_pooled", cells="named",
                   names={"sigmoid": "P1: sigmoid beats ReLU", "B_Sig": "P1: B_Sig beats B (ReLU)",
                          "gelu": "P1: GELU and ReLU do not differ"},
                   default="ours: {key} beats the reference head", equivalence={"gelu": GELU_MARGIN}),
            Claims(tests="t2_cross_tests", pooled="t2_cross_pooled", cells="named",
                   names={"sigmoid": "P1: sigmoid generalises better than ReLU (cross-dataset)",
                          "B_Sig": "P1: B_Sig generalises better than B (cross-dataset)",
                          "B_Gated": "P1: B_Gated generalises better than B (cross-dataset)"},
                   default="ours: {key} generalises better than the reference head (cross-dataset)")))
