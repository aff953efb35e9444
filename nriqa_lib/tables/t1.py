"""T1: the backbone comparison (P1) with the identical head."""
from __future__ import annotations


import pandas as pd

from ..core.paths import load_predictions, load_split_files
from ..backbones.registry import REGISTRY, is_control
from ..analysis.format import format_pm
from ..analysis.compare import METRICS, ci_label, compare, family_note, protocol, split_metrics, summarize_groups, weights_label
from ..analysis.design import Design, design_note, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import CellRow, Claims, PooledRef, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last", "t1.head",
          "stats")
__all__ = ["PARAMS", "TABLE", "compute", "t1_backbones"]


def compute(pred: pd.DataFrame, design: dict[str, Design], inputs: TableInputs, head: str,
            last: pd.DataFrame | None = None) -> Result:
    """T1: every backbone of ``inputs`` with the identical ``head`` (t1.head), per dataset, from the heads stage's
    predictions ``pred`` (``last``: those of the last epoch, with ``inputs.report_last``); pairwise tests between
    backbones (Holm family: all backbone pairs on one dataset; a pretrained backbone minus its control)."""
    res = Result(label=weights_label(inputs.pretrained))
    pred = pred[(pred["head"] == head) & (pred["part"] == "test")]
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], design, METRICS, inputs.stats.n_boot, inputs.stats.seed)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = compare(rows, pred, ["dataset"], "backbone", None, design, ["dataset"], inputs.stats.alpha, inputs.stats.n_boot,
                    inputs.stats.seed, order=_pretrained_first)
    cap = (f"T1: backbones with the identical {head} head; test SRCC and raw PLCC, mean ± sd over splits "
           f"({protocol(inputs.select_on)}; the 95% CIs in t1_summary.csv are {', '.join(sorted(summ['ci_kind'].unique()))}).")
    absent = [b for b in inputs.backbones if b not in set(pred["backbone"])]
    if absent:      # a control is trained with t1.head only: another t1.head needs the heads stage re-run
        cap += (f" Not in this table: {', '.join(absent)} (no predictions of the {head} head: the heads stage trains "
                f"it only for t1.head; run `dvc repro heads` after changing t1.head).")
    res.table("t1_backbones", table, cap + design_note(design))
    res.table("t1_tests", tests, "T1 pairwise tests (SRCC). " + family_note(tests, "all backbone pairs on one dataset",
                                                     inputs.stats.alpha))
    pool = pooled_outputs(res, inputs, tests.assign(pair=tests["a"] + " - " + tests["b"]) if len(tests) else tests, "pair",
                   ["dataset"], design, "t1", "T1 backbone pairs")
    res.csv("t1_rows", rows)
    res.csv("t1_summary", summ)
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
    if last is not None:     # P1 tracks the best test epoch but writes the last one's results: both, labelled
        last = last[(last["head"] == head) & (last["part"] == "test")]
        lrows = split_metrics(last, ["dataset", "backbone"])
        lsumm = summarize_groups(lrows, last, ["dataset", "backbone"], design, METRICS, inputs.stats.n_boot, inputs.stats.seed)
        last_table = format_pm(lsumm, ["dataset"], ["metric", "backbone"])
        res.table("t1_backbones_last_epoch", last_table,
                  f"T1 at the LAST epoch (what P1's code writes; the table t1_backbones is {protocol(inputs.select_on)}): "
                  f"{head} head, test SRCC and raw PLCC, mean ± sd over splits." + design_note(design))
        res.csv("t1_rows_last_epoch", lrows)
        res.csv("t1_summary_last_epoch", lsumm)
        res.frames["table_last_epoch"] = last_table
    res.figure("t1_srcc", "bars_with_ci", summ, "backbone", None, "dataset", ci_label=ci_label(summ))
    res.metrics = {d: {b: g.set_index("metric")["mean"].to_dict() for b, g in s.groupby("backbone")}
                   for d, s in summ.groupby("dataset")}
    return res


def _pretrained_first(backbone: str) -> tuple[bool, str]:
    """Pairs read pretrained - random-init control (the positive control's claimed direction), then by name."""
    return (backbone in REGISTRY and is_control(backbone), backbone)


def t1_backbones(inputs: TableInputs, head: str) -> Result:
    """T1 as its notebook runs it: the heads stage's predictions in, :func:`compute` on them; the one function
    of this module that reads files, and none writes (the notebook writes the Result:
    ``reporting.export.write_result``)."""
    last = load_predictions(inputs.datasets, inputs.backbones, last=True) if inputs.report_last else None
    return compute(load_predictions(inputs.datasets, inputs.backbones),
                   designs(load_split_files(inputs.datasets)), inputs, head, last)


class _BackboneClaims(Claims):
    """T1's claims: a pretrained backbone vs its random-init control (oriented pretrained - control: our positive
    control), and P1's ranking of two pretrained backbones (one pooled claim per pair)."""

    def cell_rows(self, tests: pd.DataFrame) -> list[CellRow]:
        out = []
        for r in tests.itertuples():
            a_ctrl, b_ctrl = (str(x) in REGISTRY and is_control(str(x)) for x in (r.a, r.b))
            if a_ctrl != b_ctrl:
                sign = -1 if a_ctrl else 1
                out.append((CONTROL_CLAIM, f"{r.dataset}/{r.b if a_ctrl else r.a}", sign * r.diff, r.p_holm))
        return out

    def pooled_refs(self, pooled: pd.DataFrame) -> list[PooledRef]:
        out = []
        for r in pooled.itertuples() if len(pooled) else []:
            a, b = str(r.pair).split(" - ", 1)
            a_ctrl, b_ctrl = (x in REGISTRY and is_control(x) for x in (a, b))
            if a_ctrl != b_ctrl:
                out.append((CONTROL_CLAIM, r, -1.0 if a_ctrl else 1.0, f"{b if a_ctrl else a}: "))
            else:                                  # two pretrained backbones: P1's ranking, one pair at a time
                out.append((f"P1: backbones differ ({a} vs {b})", r, 1.0, ""))
        return sorted(out, key=lambda x: x[0] == CONTROL_CLAIM)     # P1's pairs, then the controls (stable)


CONTROL_CLAIM = "control: pretrained features beat a random-init control"

TABLE = Table(
    name="t1", folder="t1", desc="T1 (P1): backbones with one identical head", params=PARAMS,
    tag="head-${t1.head}", deps=("results/heads", "splits"), shown=("t1_backbones", "t1_tests"),
    pooled_shown=("t1_pooled",), figures=("t1_srcc",), plots=("t1_srcc",),
    claims=(_BackboneClaims(tests="t1_tests", pooled="t1_pooled"),),
    findings_rank=90)        # the positive control and P1's backbone ranking close the findings
