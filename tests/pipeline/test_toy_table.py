"""Issue 38: a table is declared in one place. A toy T7 is added to a copy of the library by writing exactly its
module (analysis + declaration with one claim) and its notebook source; nothing else is edited. Then, on the toy
tree: dvc.yaml gets its stage, its notebook runs through the CLI, the report names its claim in
results/summary.md, and the site has its page."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, make_splits_files, make_tree

pytestmark = pytest.mark.xdist_group("toy_table")

T7 = '''"""T7 (a toy): head sigmoid vs head B on the heads stage's predictions, per dataset and backbone."""
from __future__ import annotations

import pandas as pd

from ..analysis.compare import compare, split_metrics, weights_label
from ..analysis.design import Design, designs
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import Claims, Table
from ..core.paths import load_predictions, load_split_files

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "stats")


def compute(pred: pd.DataFrame, design: dict[str, Design], inputs: TableInputs) -> Result:
    res = Result(label=weights_label(inputs.pretrained))
    pred = pred[pred["head"].isin(["B", "sigmoid"]) & (pred["part"] == "test")]
    rows = split_metrics(pred, ["dataset", "backbone", "head"])
    tests = compare(rows, pred, ["dataset", "backbone"], "head", "B", design, ["a"], inputs.stats.alpha,
                    inputs.stats.n_boot, inputs.stats.seed)
    res.table("t7_tests", tests, "T7: sigmoid vs B (SRCC)")
    pool = pooled_outputs(res, inputs, tests, "a", ["dataset", "backbone"], design, "t7", "T7 sigmoid vs B")
    res.metrics = {"cells": int(len(tests))}
    res.frames = {"tests": tests, "pooled": pool}
    return res


def t7_toy(inputs: TableInputs) -> Result:
    return compute(load_predictions(inputs.datasets, inputs.backbones), designs(load_split_files(inputs.datasets)), inputs)


TABLE = Table(name="t7_toy", folder="t7", desc="T7: a toy table", params=PARAMS, tag="alpha-${stats.alpha}",
              deps=("results/heads", "splits"), shown=("t7_tests",), pooled_shown=("t7_pooled",),
              claims=(Claims(tests="t7_tests", pooled="t7_pooled", names={"sigmoid": "ours: the toy sigmoid beats B"}),))
'''

NOTEBOOK = '''# %% [markdown]
# # T7: a toy table

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "results/t7"

# %%
from nriqa_lib.reporting.export import write_result
from nriqa_lib.stages.notebook import open_stage, table_inputs
from nriqa_lib.tables.t7 import t7_toy

P, out = open_stage("t7_toy", params_file, out_dir)
T = write_result(out, t7_toy(table_inputs(P)))

# %%
T["tests"]
'''


def _files(root):
    return {str(f.relative_to(root)): f.read_bytes() for d in ("nriqa_lib", "notebooks") for f in (root / d).rglob("*")
            if f.is_file() and "__pycache__" not in f.parts}


def test_a_new_table_is_its_module_and_its_notebook(tmp_path_factory):
    from nriqa_lib.pipeline.registry import stage, view
    with pytest.MonkeyPatch.context() as mp:
        tmp, p = make_tree(tmp_path_factory.mktemp("toy"), mp)
        make_splits_files(p, lambda d: "official" if d == "toya" else "random")
        for d in p.data.datasets:
            stage("heads").load().run(view(p, "heads"), d)
    p.t2.cross, p.t4.clip_models = [], []                       # no cross-dataset pair, no CLIP in the toy tree
    (tmp / "params.yaml").write_text(yaml.safe_dump(p.model_dump()))
    lib = tmp / "lib"                      # the copy of the library the new table is written into
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "nriqa_lib", lib / "nriqa_lib", ignore=ignore)
    shutil.copytree(REPO / "notebooks", tmp / "notebooks", ignore=ignore)
    shutil.copytree(REPO / "references", tmp / "references")
    (tmp / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "make_notebooks.py", tmp / "scripts")
    (lib / "nriqa_lib" / "tables" / "t7.py").write_text(T7)          # the two files a new table is
    (tmp / "notebooks" / "t7_toy.py").write_text(NOTEBOOK)

    env = {**os.environ, "PYTHONPATH": str(lib), "NRIQA_MANIFEST_DIR": str(tmp / "m"), "HF_HUB_OFFLINE": "1"}
    env.pop("DVC_STAGE", None)

    def run(*args):
        r = subprocess.run([sys.executable, *args], cwd=tmp, env=env, capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    assert str(lib) in run("-c", "import nriqa_lib; print(nriqa_lib.__file__)")     # the copy, not the repository
    run("scripts/make_notebooks.py")                                 # generators, not edits
    run("-m", "nriqa_lib.pipeline.dvcfile", "dvc.yaml")
    st = yaml.safe_load((tmp / "dvc.yaml").read_text())["stages"]
    assert list(st)[-2:] == ["t7_toy", "report"]
    assert "nriqa_lib/tables/t7.py" in st["t7_toy"]["deps"] and "results/t7/tables" in st["report"]["deps"]
    assert st["t7_toy"]["params"] == ["data.datasets", "features.backbones", "features.pretrained", "stats"]
    run("-m", "nriqa_lib.cli", "notebook", "t7_toy", "--out", "results/t7", "--tag", "toy")
    run("-m", "nriqa_lib.cli", "notebook", "report", "--out", "results/report", "--tag", "toy")
    summary = (tmp / "results" / "summary.md").read_text()
    assert "| ours: the toy sigmoid beats B |" in summary, summary
    assert "ours: the toy sigmoid beats B" in (tmp / "results" / "report" / "report.md").read_text()
    for name in ("data_overview", "t1", "t2", "t3", "t4", "t5",
                 "t6"):                                      # the other tables were not run here
        folder = tmp / st[name]["cmd"].split("--out ")[1].split()[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}__x.html").write_text("<html><head><title>x</title></head><body><p>not run here</p></body></html>")
    run("-m", "nriqa_lib.pipeline.site", "--out", "site")
    page = (tmp / "site" / "t7_toy.html").read_text()
    assert "T7: a toy table" in page and "sigmoid" in page and "toya" in page       # its notebook, rendered
    assert "t7_toy.html" in (tmp / "site" / "index.html").read_text()

    before, after = _files(REPO), {**_files(lib), **{k: v for k, v in _files(tmp).items() if k.startswith("notebooks")}}
    written = {"nriqa_lib/tables/t7.py", "notebooks/t7_toy.py"}
    generated = {"notebooks/t7_toy.ipynb"}                           # scripts/make_notebooks.py builds it
    assert set(after) - set(before) == written | generated
    assert [f for f in before if before[f] != after.get(f)] == []      # no file of the library or notebooks edited
