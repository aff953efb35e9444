"""T5: input resolution and test-time views as a controlled factor (beyond P1, which squashes every image to
its backbone's size, so that backbone and resolution are confounded)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.config import T5
from ..core.paths import load_resolution, resolution_dir, timing_dir
from ..reporting.export import format_pm, table_dirs, write_metrics_json, write_csv
from .common import (METRICS, TableInputs, compare, design_note, designs, export, family_note, pooled_outputs,
                     protocol, split_metrics, summarize_groups)

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "features.test_time", "train.select_on",
          "t5", "stats")
__all__ = ["PARAMS", "t5_resolution"]


def t5_resolution(out_dir: str | Path, run: TableInputs, t5: T5, test_time: str) -> dict[str, pd.DataFrame]:
    """T5: test SRCC per input policy (same splits, same heads), each policy vs ``features.test_time`` (Holm
    family: one policy vs the reference over every dataset x backbone x head, one claim), pooled per policy,
    and the cost of each policy (forward GFLOPs per image, counted, mean over the dataset; images/s measured, in
    results/timing/, not in any table)."""
    from ..backbones import pretrained
    out, tdir, fdir = table_dirs(out_dir)
    datasets = [d for d in t5.datasets if d in run.datasets]
    backbones = list(t5.backbones) or pretrained(run.backbones)
    if not datasets:
        note = pd.DataFrame({"note": ["no dataset of t5.datasets is in data.datasets: T5 not run"]})
        export(run, note, tdir, "t5_resolution", "T5: input resolution (not run)")
        write_metrics_json(out / "metrics.json", {})
        return {"table": note, "tests": pd.DataFrame(), "pooled": pd.DataFrame(), "cost": pd.DataFrame(),
                "timing": {}, "summary": pd.DataFrame()}
    pred = load_resolution(datasets, backbones, t5.policies)
    pred = pred[pred["part"] == "test"]
    des = designs(datasets)
    by = ["dataset", "backbone", "head", "policy"]
    rows = split_metrics(pred, by)
    summ = summarize_groups(rows, pred, by, des, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone", "head"], ["policy"])
    tests = compare(rows, pred, ["dataset", "backbone", "head"], "policy", test_time, des, ["a"],
                    run.stats.alpha, run.stats.n_boot, run.stats.seed)
    cost = pd.concat([pd.read_csv(resolution_dir(d) / "cost.csv").assign(dataset=d) for d in datasets],
                     ignore_index=True)
    # measured speeds (results/timing/, outside DVC's outputs): returned for a reader, never written to a table
    timing = {d: json.loads(f.read_text()) for d in datasets
              if (f := timing_dir() / f"resolution_{d}.json").is_file()}
    export(run, table, tdir, "t5_resolution", f"T5: test SRCC per input policy, mean ± sd over splits, same splits and "
           f"heads ({protocol(run.select_on)}); reference policy {test_time} (T1-T4's)" + design_note(des))
    export(run, tests, tdir, "t5_tests", f"T5: each policy vs {test_time} (SRCC). " + family_note(
        tests, f"one policy vs {test_time} across all datasets x backbones x heads (one claim)",
        run.stats.alpha))
    export(run, cost.set_index(["dataset", "backbone", "policy"]), tdir, "t5_cost",
           "T5: cost per policy: forward GFLOPs per image, mean over the dataset (counted once per distinct input "
           "shape), the most common input size and the mean number of views. Measured images/s (decode + transform "
           "+ forward on 32 images, 8 for native and grid, no cache) are in results/timing/resolution_<dataset>.json: they vary run to run, "
           "so no table holds them")
    pool = pooled_outputs(run, tests.assign(cell=tests["head"]) if len(tests) else tests, "a",
                          ["dataset", "backbone", "head"], des, tdir, fdir, "t5",
                          f"T5 each policy vs {test_time}")
    write_csv(summ, tdir / "t5_summary.csv")
    write_metrics_json(out / "metrics.json", {f"{d}/{b}/{h}": g.set_index("policy")["mean"].to_dict()
                                              for (d, b, h), g in summ[summ["metric"] == "srcc"].groupby(
                                                  ["dataset", "backbone", "head"])})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, "cost": cost,
            "timing": timing}
