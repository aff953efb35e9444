"""T5: input resolution and test-time views as a controlled factor (beyond P1, which squashes every image to
its backbone's size, so that backbone and resolution are confounded)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.config import T5
from ..core.paths import load_cost, load_resolution, load_split_files, load_timing
from ..reporting.export import format_pm, write_result
from .compare import METRICS, compare, family_note, protocol, split_metrics, summarize_groups, weights_label
from .design import Design, design_note, designs
from .inputs import TableInputs
from .pooled import pooled_outputs
from .result import Result

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "features.test_time", "train.select_on",
          "t5", "stats")
__all__ = ["PARAMS", "compute", "t5_resolution", "t5_scope"]


def t5_scope(run: TableInputs, t5: T5) -> tuple[list[str], list[str]]:
    """The datasets (of t5.datasets, in data.datasets) and backbones (t5.backbones, or every pretrained one) T5
    compares."""
    from ..backbones import pretrained
    return [d for d in t5.datasets if d in run.datasets], list(t5.backbones) or pretrained(run.backbones)


def compute(pred: pd.DataFrame | None, cost: pd.DataFrame | None, timing: dict, design: dict[str, Design],
            run: TableInputs, t5: T5, test_time: str) -> Result:
    """T5: test SRCC per input policy (same splits, same heads) from the resolution stage's predictions ``pred``,
    each policy vs ``features.test_time`` (Holm family: one policy vs the reference over every dataset x backbone x
    head, one claim), pooled per policy, and the cost of each policy (``cost``: forward GFLOPs per image, counted,
    mean over the dataset; ``timing``: images/s measured, from results/timing/, returned and in no table).
    ``pred`` None: no dataset of t5.datasets is in the run."""
    res = Result(label=weights_label(run.pretrained))
    if pred is None:
        note = pd.DataFrame({"note": ["no dataset of t5.datasets is in data.datasets: T5 not run"]})
        res.table("t5_resolution", note, "T5: input resolution (not run)")
        res.metrics = {}
        res.frames = {"table": note, "tests": pd.DataFrame(), "pooled": pd.DataFrame(), "cost": pd.DataFrame(),
                      "timing": {}, "summary": pd.DataFrame()}
        return res
    pred = pred[pred["part"] == "test"]
    by = ["dataset", "backbone", "head", "policy"]
    rows = split_metrics(pred, by)
    summ = summarize_groups(rows, pred, by, design, METRICS, run.stats.n_boot, run.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone", "head"], ["policy"])
    tests = compare(rows, pred, ["dataset", "backbone", "head"], "policy", test_time, design, ["a"],
                    run.stats.alpha, run.stats.n_boot, run.stats.seed)
    res.table("t5_resolution", table, f"T5: test SRCC per input policy, mean ± sd over splits, same splits and "
              f"heads ({protocol(run.select_on)}); reference policy {test_time} (T1-T4's)" + design_note(design))
    res.table("t5_tests", tests, f"T5: each policy vs {test_time} (SRCC). " + family_note(
        tests, f"one policy vs {test_time} across all datasets x backbones x heads (one claim)", run.stats.alpha))
    res.table("t5_cost", cost.set_index(["dataset", "backbone", "policy"]),
              "T5: cost per policy: forward GFLOPs per image, mean over the dataset (counted once per distinct input "
              "shape), the most common input size and the mean number of views. Measured images/s (decode + transform "
              "+ forward on 32 images, 8 for native and grid, no cache) are in results/timing/resolution_<dataset>.json: they vary run to run, "
              "so no table holds them")
    pool = pooled_outputs(res, run, tests.assign(cell=tests["head"]) if len(tests) else tests, "a",
                          ["dataset", "backbone", "head"], design, "t5", f"T5 each policy vs {test_time}")
    res.csv("t5_summary", summ)
    res.metrics = {f"{d}/{b}/{h}": g.set_index("policy")["mean"].to_dict()
                   for (d, b, h), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone", "head"])}
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, "cost": cost,
                  "timing": timing}
    return res


def t5_resolution(out_dir: str | Path, run: TableInputs, t5: T5, test_time: str) -> dict[str, pd.DataFrame]:
    """T5 as its notebook runs it: the resolution stage's predictions and counted cost (and the measured speeds) in,
    :func:`compute`, the files written (the one function of this module that reads or writes files); returns the
    frames."""
    datasets, backbones = t5_scope(run, t5)
    if not datasets:
        return write_result(out_dir, compute(None, None, {}, {}, run, t5, test_time))
    return write_result(out_dir, compute(load_resolution(datasets, backbones, t5.policies), load_cost(datasets),
                                         load_timing(datasets), designs(load_split_files(datasets)), run, t5,
                                         test_time))
