"""dvc.yaml against the code: declared == read (params from each stage's PARAMS, enforced at run time by
ParamsView; code deps cover every library file the stage's imports reach), and what each stage must depend on
so that no table is stale and no typo costs outputs."""
import subprocess

import pytest
import yaml

from conftest import REPO
from nriqa_lib.config import Params, ParamsView, UndeclaredParam
from nriqa_lib.stages import NOTEBOOKS, STAGES
from nriqa_lib.stages.declare import import_closure, stage_files, stage_params
from nriqa_lib.stages.dvcfile import render

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGE_DEFS = DVC["stages"]


def _deps(name):
    return [d if isinstance(d, str) else next(iter(d)) for d in STAGE_DEFS[name].get("deps", [])]


def _params(name):
    out = []
    for p in STAGE_DEFS[name].get("params", []):
        out += [p] if isinstance(p, str) else list(p)
    return out


def test_dvc_yaml_is_generated_from_the_code():
    """`python -m nriqa_lib.stages.dvcfile` regenerates dvc.yaml; a stale one fails here."""
    assert (REPO / "dvc.yaml").read_text() == render()
    assert set(STAGE_DEFS) == set(STAGES) | set(NOTEBOOKS)


@pytest.mark.parametrize("name", [*STAGES, *NOTEBOOKS])
def test_declared_equals_read(name):
    if name != "check":
        assert _params(name) == list(stage_params(name))
    deps = _deps(name)
    for f in stage_files(name):                 # every library file the stage can load is a dependency
        assert f in deps or any(f.startswith(d.rstrip("/") + "/") for d in deps), (name, f)


def test_import_closure_follows_function_level_imports():
    files = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.stages.figures")}
    assert {"nriqa_lib/explain.py", "nriqa_lib/train.py", "nriqa_lib/reporting/plots.py"} <= files
    t1 = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.analysis.t1")}
    assert "nriqa_lib/train.py" not in t1 and "nriqa_lib/zeroshot.py" not in t1     # tables do not train


def test_a_stage_cannot_read_an_undeclared_param():
    v = ParamsView(Params(), ["t1.head", "stats"], "stage t1_backbones")
    assert v.t1.head == "B" and v.stats.alpha == 0.05
    with pytest.raises(UndeclaredParam, match=r"stage t1_backbones reads params section 'train'.*do not declare"):
        v.train
    with pytest.raises(UndeclaredParam, match=r"reads t1.nope"):
        v.t1.nope
    with pytest.raises(AttributeError):
        v.t1.head = "B_Sig"


def test_every_stage_waits_for_the_params_check():
    """`check` validates params.yaml first; a typo then stops `dvc repro` before DVC removes any output."""
    assert _params("check") == ["params.yaml"] and "results/params_ok.txt" in str(STAGE_DEFS["check"]["outs"])
    for name in STAGE_DEFS:
        if name != "check":
            assert "results/params_ok.txt" in _deps(name), name


def test_a_corrected_mos_reaches_every_stage_that_reads_it():
    # every stage that reads a manifest depends on the folder: data.manifests may point a dataset at another
    # manifest (clive -> clive_p1), so a per-dataset file would miss the one actually read
    for name in ("heads", "zeroshot", "splits", "features", "finetune", "resolution", "data_overview", "cross",
                 "figures"):
        assert "data_manifests" in _deps(name), name
    # the tables read the MOS through predictions / scores, which depend on the manifests
    assert "results/heads" in _deps("t1_backbones") and "results/zeroshot" in _deps("t4_zeroshot")


def test_tables_rerun_when_the_datasets_or_backbones_change():
    for name in ("t1_backbones", "t2_activations", "t3_selection", "t4_zeroshot"):
        params = _params(name)
        assert "data.datasets" in params and "features.backbones" in params, name
    for name in ("t1_backbones", "t3_selection"):
        assert "train.select_on" in _params(name)              # their captions state the protocol


def test_metrics_are_committed_and_restorable():
    for t in ("t1", "t2", "t3", "t4"):
        name = next(k for k in STAGE_DEFS if k.startswith(t + "_"))
        assert STAGE_DEFS[name]["metrics"] == [{f"results/{t}/metrics.json": {"cache": False}}]
        ignored = subprocess.run(["git", "check-ignore", "-q", f"results/{t}/metrics.json"], cwd=REPO).returncode
        assert ignored == 1, f"results/{t}/metrics.json is git-ignored"      # 1 = not ignored: it is committed
    assert subprocess.run(["git", "check-ignore", "-q", "dvc.lock"], cwd=REPO).returncode == 1
