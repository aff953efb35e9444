"""A notebook's parameters cell (issue 40 item 5): its knobs (``overrides``) over the params file, validated; an
absolute params file finds its repository; the default out_dir is not the pipeline's output folder."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from conftest import REPO
from nriqa_lib.core.config import ConfigError
from nriqa_lib.stages.notebook import open_stage


@pytest.fixture
def tree(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path / "notebooks")
    yield tmp_path
    os.chdir(cwd)


def test_overrides_apply_to_declared_params_only_and_are_validated(tree):
    P, out = open_stage("t1", "params.yaml", "scratch/t1", {"t1.head": "B_Sig"})
    assert P.t1.head == "B_Sig" and os.getcwd() == str(tree) and str(out) == "scratch/t1"
    with pytest.raises(ConfigError, match=r"override 't2.heads' is not a param it reads \(it reads: .*t1.head"):
        open_stage("t1", "params.yaml", None, {"t2.heads": ["B"]})
    with pytest.raises(ConfigError, match="notebook t1: overrides: .*n_boot"):
        open_stage("t1", "params.yaml", None, {"stats.n_boot": -5})


def test_an_absolute_params_file_moves_to_its_repository(tree):
    """The README's papermill call with an absolute -p params_file from notebooks/ ended in a misleading 'missing
    (run dvc repro heads)': the kernel stayed in notebooks/, where results/ is not."""
    open_stage("t1", str(tree / "params.yaml"))
    assert os.getcwd() == str(tree)


def test_a_notebook_run_by_hand_does_not_write_the_pipelines_outputs():
    """Run All in JupyterLab used to overwrite DVC's outputs (the default out_dir was results/<t>)."""
    from nriqa_lib.pipeline.registry import registry
    for s in registry().values():
        if s.is_notebook:
            src = (REPO / "notebooks" / f"{s.name}.py").read_text()
            default = re.search(r'^out_dir = "([^"]+)"', src, re.M).group(1)
            assert not default.startswith("results"), s.name
            assert re.search(r"^overrides = \{\}", src, re.M) and "overrides)" in src, s.name
