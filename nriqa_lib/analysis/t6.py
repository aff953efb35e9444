"""T6: training regimes (P1): frozen backbone + head (the heads stage) vs LoRA vs full fine-tuning."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..backbones import pretrained
from ..paths import load_finetune, load_predictions
from ..reporting import plots
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (design_note, METRICS, ci_label, compare, designs, export, family_note, pooled_outputs, protocol, split_metrics,
                     summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "train.select_on", "t1.head", "finetune",
          "stats")
__all__ = ["PARAMS", "t6_regimes"]


def t6_regimes(p, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T6: each regime vs frozen on the same splits (Holm family: one regime vs frozen over every dataset x
    backbone, one claim), with the statistics of T1-T3. Splits fine-tuned (``finetune.max_splits``) decide
    which frozen splits enter the comparison: both sides always on the same splits."""
    out, tdir, fdir = table_dirs(out_dir)
    backbones = list(p.finetune.backbones) or pretrained(p.features.backbones)
    regimes = list(p.finetune.regimes)
    if not regimes:
        note = pd.DataFrame({"note": ["finetune.regimes is empty in this profile: no regime was fine-tuned "
                                      "(params-paper.yaml runs lora and full)"]})
        export(p, note, tdir, "t6_regimes", "T6: training regimes (not run)")
        write_metrics_json(out / "metrics.json", {})
        return {"table": note, "tests": pd.DataFrame(), "summary": pd.DataFrame(), "pooled": pd.DataFrame()}
    ft = load_finetune(p.data.datasets, backbones, regimes)
    frozen = load_predictions(p.data.datasets, backbones)
    frozen = frozen[frozen["head"] == p.t1.head].assign(regime="frozen")
    keep = ft[["dataset", "backbone", "split"]].drop_duplicates()
    frozen = frozen.merge(keep, on=["dataset", "backbone", "split"])
    pred = pd.concat([frozen[ft.columns.intersection(frozen.columns)], ft], ignore_index=True)
    pred = pred[pred["part"] == "test"]
    des = designs(p.data.datasets)
    rows = split_metrics(pred, ["dataset", "backbone", "regime"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone", "regime"], des, METRICS, p.stats.n_boot, p.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone"], ["regime"])
    tests = compare(rows, pred, ["dataset", "backbone"], "regime", "frozen", des, ["a"], p.stats.alpha,
                    p.stats.n_boot, p.stats.seed)
    export(p, table, tdir, "t6_regimes", f"T6: frozen vs LoRA vs full fine-tuning ({p.t1.head} head), test SRCC "
                 f"mean ± sd over splits ({protocol(p.train.select_on)})" + design_note(des))
    export(p, tests, tdir, "t6_tests", "T6: each regime vs frozen (SRCC). "
                 + family_note(tests, "one regime vs frozen across all datasets x backbones (one claim)", p.stats.alpha))
    pool = pooled_outputs(p, tests, "a", ["dataset", "backbone"], des, tdir, fdir, "t6", "T6 each regime vs frozen")
    write_csv(rows, tdir / "t6_rows.csv")
    write_csv(summ, tdir / "t6_summary.csv")
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("regime")["mean"].to_dict()
                                              for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool}
