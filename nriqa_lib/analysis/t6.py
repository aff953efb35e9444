"""T6: training regimes (P1): frozen backbone + head (the heads stage) vs P1's regime (LoRA adapters + full backbone)
vs LoRA adapters only vs full fine-tuning, per fine-tuned head."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..backbones import pretrained
from ..core.config import REGIME_LABELS, Finetune
from ..core.paths import load_finetune, load_predictions
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (METRICS, TableInputs, compare, design_note, designs, export, family_note, pooled_outputs, protocol,
                     split_metrics, summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "train.report_last",
          "finetune", "stats")
__all__ = ["PARAMS", "t6_regimes"]


def t6_regimes(out_dir: str | Path, run: TableInputs, finetune: Finetune) -> dict[str, pd.DataFrame]:
    """T6: each regime vs frozen on the same splits, per head of ``finetune.heads`` (Holm family: one regime vs
    frozen over every dataset x backbone x head, one claim), with the statistics of T1-T3. Splits fine-tuned
    (``finetune.max_splits``) decide which frozen splits enter the comparison: both sides always on the same
    splits. With ``train.report_last`` a second set of tables at the last epoch (what P1's code writes)."""
    out, tdir, fdir = table_dirs(out_dir)
    backbones = list(finetune.backbones) or pretrained(run.backbones)
    regimes = list(finetune.regimes)
    if not regimes:
        note = pd.DataFrame({"note": ["finetune.regimes is empty in this profile: no regime was fine-tuned "
                                      "(params-paper.yaml runs p1, lora and full)"]})
        export(run, note, tdir, "t6_regimes", "T6: training regimes (not run)")
        write_metrics_json(out / "metrics.json", {})
        return {"table": note, "tests": pd.DataFrame(), "summary": pd.DataFrame(), "pooled": pd.DataFrame()}
    labels = "; ".join(f"{r} = {REGIME_LABELS[r]}" for r in ["frozen", *regimes])
    res = _t6(run, finetune, backbones, regimes, tdir, fdir, labels, last=False)
    if run.report_last:
        res["last_epoch"] = _t6(run, finetune, backbones, regimes, tdir, fdir, labels, last=True)
    summ = res["summary"]
    write_metrics_json(out / "metrics.json", {f"{d}/{b}/{h}": g.set_index("regime")["mean"].to_dict()
                                              for (d, b, h), g in summ[summ["metric"] == "srcc"].groupby(
                                                  ["dataset", "backbone", "head"])})
    return res


def _t6(run: TableInputs, finetune: Finetune, backbones, regimes, tdir, fdir, labels: str, last: bool) -> dict[str, pd.DataFrame]:
    ft = load_finetune(run.datasets, backbones, regimes, last=last)
    frozen = load_predictions(run.datasets, backbones, last=last)
    frozen = frozen[frozen["head"].isin(finetune.heads)].assign(regime="frozen")
    keep = ft[["dataset", "backbone", "head", "split"]].drop_duplicates()
    frozen = frozen.merge(keep, on=["dataset", "backbone", "head", "split"])
    pred = pd.concat([frozen[ft.columns.intersection(frozen.columns)], ft], ignore_index=True)
    pred = pred[pred["part"] == "test"]
    des = designs(run.datasets)
    keys = ["dataset", "backbone", "head"]
    sfx, when = ("_last_epoch", "the LAST epoch (what P1's code writes)") if last else (
        "", protocol(run.select_on) + (" = best-on-test" if run.select_on == "test" else ""))
    rows = split_metrics(pred, [*keys, "regime"])
    summ = summarize_groups(rows, pred, [*keys, "regime"], des, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], keys, ["regime"])
    tests = compare(rows, pred, keys, "regime", "frozen", des, ["a"], run.stats.alpha, run.stats.n_boot, run.stats.seed)
    export(run, table, tdir, f"t6_regimes{sfx}", f"T6: training regimes per head, test SRCC mean ± sd over splits at "
                 f"{when} ({labels})" + design_note(des))
    export(run, tests, tdir, f"t6_tests{sfx}", f"T6 ({when}): each regime vs frozen (SRCC). "
                 + family_note(tests, "one regime vs frozen across all datasets x backbones x heads (one claim)",
                               run.stats.alpha))
    pool = pooled_outputs(run, tests, "a", keys, des, tdir, fdir, f"t6{sfx}", f"T6 each regime vs frozen{sfx}")
    write_csv(rows, tdir / f"t6_rows{sfx}.csv")
    write_csv(summ, tdir / f"t6_summary{sfx}.csv")
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
