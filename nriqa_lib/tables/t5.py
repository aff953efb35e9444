"""T5: input resolution and test-time views as a controlled factor (beyond P1, which squashes every image to
its backbone's size, so that backbone and resolution are confounded)."""
from __future__ import annotations


import pandas as pd

from ..core.config import T5
from ..core.paths import load_cost, load_resolution, load_split_files, load_timing
from ..analysis.compare import compare_levels, family_note, protocol, weights_label
from ..analysis.design import Design, design_note, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import Claims, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "features.test_time", "train.select_on",
          "t5", "stats")
__all__ = ["PARAMS", "TABLE", "compute", "t5_resolution", "t5_scope"]


def t5_scope(inputs: TableInputs, t5: T5) -> tuple[list[str], list[str]]:
    """The datasets (of t5.datasets, in data.datasets) and backbones (t5.backbones, or every pretrained one) T5
    compares."""
    from ..backbones.registry import pretrained
    return [d for d in t5.datasets if d in inputs.datasets], list(t5.backbones) or pretrained(inputs.backbones)


def compute(pred: pd.DataFrame | None, cost: pd.DataFrame | None, timing: dict, design: dict[str, Design],
            inputs: TableInputs, t5: T5, test_time: str) -> Result:
    """T5 as its notebook runs it: the resolution stage's predictions and counted cost (and the measured speeds)
    in, :func:`compute` on them; the one function of this module that reads files, and none writes (the notebook
    writes the Result: ``reporting.export.write_result``)."""
    res = Result(label=weights_label(inputs.pretrained))
    if pred is None:
        note = pd.DataFrame({"note": ["no dataset of t5.datasets is in data.datasets: T5 not run"]})
        res.table("t5_resolution", note, "T5: input resolution (not run)")
        res.metrics = {}
        res.frames = {"table": note, "tests": pd.DataFrame(), "pooled": pd.DataFrame(), "cost": pd.DataFrame(),
                      "timing": {}, "summary": pd.DataFrame()}
        return res
    pred = pred[pred["part"] == "test"]
    c = compare_levels(pred, ["dataset", "backbone", "head"], "policy", test_time, design, inputs)
    rows, summ, table, tests = c.rows, c.summary, c.table, c.tests
    res.table("t5_resolution", table, f"T5: test SRCC per input policy, mean ± sd over splits, same splits and "
              f"heads ({protocol(inputs.select_on)}); reference policy {test_time} (T1-T4's)" + design_note(design))
    res.table("t5_tests", tests, f"T5: each policy vs {test_time} (SRCC). " + family_note(
        tests, f"one policy vs {test_time} across all datasets x backbones x heads (one claim)", inputs.stats.alpha))
    res.table("t5_cost", cost.set_index(["dataset", "backbone", "policy"]),
              "T5: cost per policy: forward GFLOPs per image, mean over the dataset (counted once per distinct input "
              "shape), the most common input size and the mean number of views. Measured images/s (decode + transform "
              "+ forward on 32 images, 8 for native and grid, no cache) are in results/timing/resolution_<dataset>.json: they vary run to run, "
              "so no table holds them")
    pool = pooled_outputs(res, inputs, tests.assign(cell=tests["head"]) if len(tests) else tests, "a",
                   ["dataset", "backbone", "head"], design, "t5", f"T5 each policy vs {test_time}")
    res.csv("t5_summary", summ)
    res.metrics = {f"{d}/{b}/{h}": g.set_index("policy")["mean"].to_dict()
                   for (d, b, h), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone", "head"])}
    res.frames = {"rows": rows, "summary": summ, "table": table, "tests": tests, "pooled": pool, "cost": cost,
                  "timing": timing}
    return res


def t5_resolution(inputs: TableInputs, t5: T5, test_time: str) -> Result:
    """T5 as its notebook runs it: the resolution stage's predictions and counted cost (and the measured speeds) in,
    :func:`compute`, returned unwritten (the one function of this module that reads files; its notebook writes it with ``write_result``)."""
    datasets, backbones = t5_scope(inputs, t5)
    if not datasets:
        return compute(None, None, {}, {}, inputs, t5, test_time)
    return compute(load_resolution(datasets, backbones, t5.policies), load_cost(datasets),
                   load_timing(datasets), designs(load_split_files(datasets)), inputs, t5,
                   test_time)


TABLE = Table(
    name="t5", folder="t5", desc="T5 (beyond P1): input resolution and test-time views", params=PARAMS,
    tag="${features.test_time}", deps=("results/resolution", "splits"),
    shown=("t5_resolution", "t5_tests", "t5_cost"), pooled_shown=("t5_pooled",), figures=("t5_forest",),
    claims=(Claims(tests="t5_tests", pooled="t5_pooled", default="ours: input policy {key} beats squash",
                   where=("dataset", "backbone", "head")),))
