"""dvc.yaml's declarations: what each stage must depend on so that no table is stale and no typo costs outputs."""
import yaml

from conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _deps(name):
    return [d if isinstance(d, str) else next(iter(d)) for d in STAGES[name].get("deps", [])]


def _params(name):
    out = []
    for p in STAGES[name].get("params", []):
        out += [p] if isinstance(p, str) else list(p)
    return out


def test_every_stage_waits_for_the_params_check():
    """`check` validates params.yaml first; a typo then stops `dvc repro` before DVC removes any output."""
    assert _params("check") == ["params.yaml"] and "results/params_ok.txt" in str(STAGES["check"]["outs"])
    for name in STAGES:
        if name != "check":
            assert "results/params_ok.txt" in _deps(name), name


def test_a_corrected_mos_reaches_every_stage_that_reads_it():
    assert "data_manifests/${item.dataset}.csv" in _deps("heads")
    for name in ("data_overview", "t2_activations", "t4_zeroshot", "report"):
        assert "data_manifests" in _deps(name), name


def test_tables_rerun_when_the_datasets_or_backbones_change():
    for name in ("t1_backbones", "t2_activations", "t3_selection", "t4_zeroshot"):
        params = _params(name)
        assert "data.datasets" in params and "features.backbones" in params, name
        assert "nriqa_lib/metrics.py" in _deps(name) and "nriqa_lib/results.py" in _deps(name), name
    for name in ("t1_backbones", "t3_selection"):
        assert "train.select_on" in _params(name)              # their captions state the protocol


def test_metrics_are_restorable():
    for t in ("t1", "t2", "t3", "t4"):
        m = STAGES[[k for k in STAGES if k.startswith(t + "_")][0]]["metrics"]
        assert m == [f"results/{t}/metrics.json"]               # in DVC's cache, not cache: false
