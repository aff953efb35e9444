"""T6: training regimes (P1): frozen backbone + head (the heads stage) vs P1's two recipes (``p1_frozen``: as
published, LoRA adapters on a frozen backbone; ``p1``: as released, LoRA adapters + every backbone weight) vs ours
(LoRA adapters only, full fine-tuning), per fine-tuned head; and each regime's test SRCC epoch by epoch."""
from __future__ import annotations


import pandas as pd

from ..backbones.registry import pretrained
from ..core.config import REGIME_LABELS, Finetune
from ..core.paths import load_finetune, load_finetune_history, load_predictions, load_split_files
from ..analysis.compare import compare_levels, family_note, protocol, weights_label
from ..analysis.design import Design, design_note, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import Claims, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last",
          "finetune", "stats")
__all__ = ["PARAMS", "TABLE", "compute", "epoch_table", "t6_regimes"]

KEYS = ["dataset", "backbone", "head", "regime"]


def epoch_table(history: pd.DataFrame) -> pd.DataFrame:
    """Test SRCC epoch by epoch, per dataset x backbone x head x regime: mean, sd and n over the fine-tuned splits
    (a split whose SRCC is undefined at an epoch, constant predictions, is left out of that epoch's n)."""
    g = history.groupby([*KEYS, "epoch"], sort=False)["test_srcc"]
    return g.agg(mean="mean", sd="std", n="count").reset_index()


def _flattery(history: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the mean over splits of the best test SRCC over epochs (best-on-test, P1's selection), of the last
    epoch's (what P1's code writes), and their difference: how much choosing the epoch on the test set flatters."""
    h = history.dropna(subset=["test_srcc"])
    per = h.groupby([*KEYS, "split"], sort=False).agg(best=("test_srcc", "max"), n_epochs=("epoch", "nunique"))
    last = h.sort_values("epoch", kind="stable").groupby([*KEYS, "split"], sort=False)["test_srcc"].last()
    per = per.assign(last=last, gain=per["best"] - last).reset_index()
    out = per.groupby(KEYS, sort=False).agg(best_on_test=("best", "mean"), last_epoch=("last", "mean"),
                      gain=("gain", "mean"), gain_max=("gain", "max"), splits=("split", "count"),
                      epochs=("n_epochs", "max")).reset_index()
    return out.round({"best_on_test": 4, "last_epoch": 4, "gain": 4, "gain_max": 4})


def compute(ft: pd.DataFrame | None, frozen: pd.DataFrame | None, design: dict[str, Design], inputs: TableInputs,
            finetune: Finetune, last: tuple[pd.DataFrame, pd.DataFrame] | None = None,
            history: pd.DataFrame | None = None) -> Result:
    """T6: each regime vs frozen on the same splits, per head of ``finetune.heads`` (Holm family: one regime vs
    frozen over every dataset x backbone x head, one claim), with the statistics of T1-T3, from the finetune
    stage's predictions ``ft`` and the heads stage's ``frozen``. Splits fine-tuned (``finetune.max_splits``) decide
    which frozen splits enter the comparison: both sides always on the same splits. ``last``: (ft, frozen) at the
    last epoch (``train.report_last``: a second set of tables, what P1's code writes). ``history``: every epoch's
    test SRCC (the finetune stage's run.json), for the per-epoch curves. ``ft`` None: no regime."""
    res = Result(label=weights_label(inputs.pretrained))
    regimes = list(finetune.regimes)
    if ft is None:
        note = pd.DataFrame({"note": ["finetune.regimes is empty in this profile: no regime was fine-tuned "
                               "(params-paper.yaml runs p1, lora and full)"]})
        res.table("t6_regimes", note, "T6: training regimes (not run)")
        res.metrics = {}
        res.frames = {"table": note, "tests": pd.DataFrame(), "summary": pd.DataFrame(), "pooled": pd.DataFrame()}
        return res
    labels = "; ".join(f"{r} = {REGIME_LABELS[r]}" for r in ["frozen", *regimes])
    res.frames = _t6(res, ft, frozen, design, inputs, finetune, labels, last=False)
    if last is not None:
        res.frames["last_epoch"] = _t6(res, *last, design, inputs, finetune, labels, last=True)
    if history is not None and len(history):
        curves, flat = epoch_table(history), _flattery(history)
        res.table("t6_epochs", flat, "T6: test SRCC at the best epoch chosen ON THE TEST SET (P1's selection) vs at "
                  "the last epoch (what P1's code writes), mean over splits, and their mean and largest difference "
                  f"per split: how much best-on-test flatters ({labels})")
        res.csv("t6_epoch_curves", curves)
        res.figure("t6_epochs", "epoch_curves", curves)
        res.frames.update(epoch_curves=curves, flattery=flat)
    summ = res.frames["summary"]
    res.metrics = {f"{d}/{b}/{h}": g.set_index("regime")["mean"].to_dict()
                   for (d, b, h), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone", "head"])}
    return res


def _t6(res: Result, ft: pd.DataFrame, frozen: pd.DataFrame, design: dict[str, Design], inputs: TableInputs,
        finetune: Finetune, labels: str, last: bool) -> dict[str, pd.DataFrame]:
    frozen = frozen[frozen["head"].isin(finetune.heads)].assign(regime="frozen")
    keep = ft[["dataset", "backbone", "head", "split"]].drop_duplicates()
    frozen = frozen.merge(keep, on=["dataset", "backbone", "head", "split"])
    pred = pd.concat([frozen[ft.columns.intersection(frozen.columns)], ft], ignore_index=True)
    pred = pred[pred["part"] == "test"]
    keys = ["dataset", "backbone", "head"]
    sfx, when = ("_last_epoch", "the LAST epoch (what P1's code writes)") if last else (
        "", protocol(inputs.select_on) + (" = best-on-test" if inputs.select_on == "test" else ""))
    c = compare_levels(pred, keys, "regime", "frozen", design, inputs)
    rows, summ, table, tests = c.rows, c.summary, c.table, c.tests
    res.table(f"t6_regimes{sfx}", table, f"T6: training regimes per head, test SRCC mean ± sd over splits at "
                                 f"{when} ({labels})" + design_note(design))
    res.table(f"t6_tests{sfx}", tests, f"T6 ({when}): each regime vs frozen (SRCC). " + family_note(
        tests, "one regime vs frozen across all datasets x backbones x heads (one claim)", inputs.stats.alpha))
    pool = pooled_outputs(res, inputs, tests, "a", keys, design, f"t6{sfx}", f"T6 each regime vs frozen{sfx}")
    res.csv(f"t6_rows{sfx}", rows)
    res.csv(f"t6_summary{sfx}", summ)
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}


def t6_regimes(inputs: TableInputs, finetune: Finetune) -> Result:
    """T6 as its notebook runs it: the finetune and heads stages' predictions (both epochs with
    ``train.report_last``) in, :func:`compute` on them; the one function of this module that reads files, and
    none writes (the notebook writes the Result: ``reporting.export.write_result``)."""
    backbones = list(finetune.backbones) or pretrained(inputs.backbones)
    if not finetune.regimes:
        return compute(None, None, {}, inputs, finetune)

    def both(last: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (load_finetune(inputs.datasets, backbones, list(finetune.regimes), last=last),
                load_predictions(inputs.datasets, backbones, last=last))
    return compute(*both(False), designs(load_split_files(inputs.datasets)), inputs, finetune,
                   both(True) if inputs.report_last else None,
                   load_finetune_history(inputs.datasets, backbones, list(finetune.regimes)))


# T6's regimes as claims: P1's published fine-tuning is (most likely) p1_frozen, its released code p1; lora and full
# are ours
T6_CLAIMS = {"p1_frozen": "P1 (as published): LoRA adapters on a frozen backbone beat a frozen backbone + head",
             "p1": "P1's released code: LoRA adapters + full backbone beat a frozen backbone",
             "lora": "ours: LoRA adapters alone beat a frozen backbone",
             "full": "ours: full fine-tuning beats a frozen backbone"}

TABLE = Table(
    name="t6", folder="t6", desc="T6 (P1): frozen vs P1's two recipes vs LoRA vs full fine-tuning",
    params=PARAMS, tag="select-${train.select_on}", deps=("results/heads", "results/finetune", "splits"),
    shown=("t6_regimes", "t6_tests"), pooled_shown=("t6_pooled",), figures=("t6_forest",),
    claims=(Claims(tests="t6_tests", pooled="t6_pooled", names=T6_CLAIMS,
                   default="ours: {key} fine-tuning beats a frozen backbone", where=("dataset", "backbone", "head")),))
