"""dvc.yaml against the code: declared == read (params from each stage's PARAMS, enforced at run time by
ParamsView; code deps cover every library file the stage's imports reach), and what each stage must depend on
so that no table is stale and no typo costs outputs."""
import subprocess

import pytest
import yaml

from conftest import REPO
from nriqa_lib.core.config import Params
from nriqa_lib.core.params import ParamsView, UndeclaredParam
from nriqa_lib.stages.declare import import_closure, stage_files, stage_params
from nriqa_lib.stages.dvcfile import render
from nriqa_lib.stages.registry import registry

REGISTRY = registry()

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
    assert list(STAGE_DEFS) == list(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_declared_equals_read(name):
    if name != "check":
        assert _params(name) == list(stage_params(name))
    deps = _deps(name)
    files = stage_files(name)
    for f in files:                             # every library file the stage can load is a dependency
        assert f in deps or any(f.startswith(d.rstrip("/") + "/") for d in deps), (name, f)
    for d in deps:                              # a package folder only where the stage loads all of it
        if d.startswith("nriqa_lib/") and d.endswith("/"):
            inside = {str(f.relative_to(REPO)) for f in (REPO / d).rglob("*.py") if "__pycache__" not in f.parts}
            assert inside and inside <= set(files), (name, d, sorted(inside - set(files)))


def test_import_closure_follows_function_level_imports():
    files = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.stages.figures")}
    assert {"nriqa_lib/reporting/explain.py", "nriqa_lib/training/heads.py", "nriqa_lib/reporting/plots.py"} <= files
    t1 = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.analysis.t1")}
    assert not any(f.startswith(("nriqa_lib/training/", "nriqa_lib/zeroshot/")) for f in t1)     # tables do not train


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
    """DVC lists one small file of headline metrics (results/summary.json, issue 25 item 6); every table's
    metrics.json is still an output committed to git (not cached), so `git diff` compares a change with the study."""
    metrics = [next(iter(m)) for st in STAGE_DEFS.values() for m in st.get("metrics", [])]
    assert metrics == ["results/summary.json"]
    for t in ("t1", "t2", "t3", "t4", "t5", "t6"):
        name = next(k for k in STAGE_DEFS if k.startswith(t + "_"))
        assert {f"results/{t}/metrics.json": {"cache": False}} in STAGE_DEFS[name]["outs"]
    for f in ("results/t1/metrics.json", "results/summary.json", "results/summary.md", "results/summary_forest.png",
              "results/summary.csv", "dvc.lock"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f], cwd=REPO).returncode
        assert ignored == 1, f"{f} is git-ignored"      # 1 = not ignored: it is committed


def test_adding_a_table_reruns_no_other_stage():
    """The registry and the table entries are declarations (their effect on a stage is written into dvc.yaml):
    no stage has them as code deps, so a new table does not re-run features, heads or any other table."""
    for name, st in STAGE_DEFS.items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in st["deps"]]
        assert not {"nriqa_lib/stages/registry.py", "nriqa_lib/stages/tables.py"} & set(deps), name


def test_a_table_is_one_stage_entry(tmp_path):
    """Issue 24 item 1: a toy table T7 registered in a temporary registry (one Stage, no other file touched) gets
    its dvc.yaml stage (command, deps, params, outputs, metrics, plots), the report's dependency on its tables and
    figures, and the CLI's ``notebook t7_toy``; the real registry is left as it is."""
    from nriqa_lib import cli
    from nriqa_lib.stages.registry import Stage
    toy = Stage(name="t7_toy", module="nriqa_lib.analysis.t1", params=("data.datasets", "stats"),
                desc="T7: a toy table", deps=("notebooks/t7_toy.ipynb", "results/heads"), notebook="t7",
                tag="alpha-${stats.alpha}", metrics=True, plots=("results/t7/figures/t7.png",))
    reg = registry([toy])
    doc = yaml.safe_load(render(reg))
    st = doc["stages"]["t7_toy"]
    assert st["desc"] == "T7: a toy table"
    assert st["cmd"] == "python -m nriqa_lib.cli notebook t7_toy --out results/t7 --tag alpha-${stats.alpha}"
    assert st["params"] == ["data.datasets", "stats"]
    assert st["deps"][:3] == ["results/params_ok.txt", "notebooks/t7_toy.ipynb", "results/heads"]
    assert "nriqa_lib/analysis/t1.py" in st["deps"] and "nriqa_lib/stages/notebook.py" in st["deps"]
    assert st["outs"] == ["results/t7/t7_toy__alpha-${stats.alpha}.ipynb", "results/t7/t7_toy__alpha-${stats.alpha}.html",
                          "results/t7/tables", "results/t7/figures", {"results/t7/metrics.json": {"cache": False}}]
    assert "results/t7/figures/t7.png" in doc["plots"]
    report = doc["stages"]["report"]["deps"]
    assert "results/t7/tables" in report and "results/t7/figures" in report
    assert list(doc["stages"])[-2:] == ["t7_toy", "report"]
    a = cli.build_parser(reg).parse_args(["notebook", "t7_toy", "--out", "results/t7"])
    assert (a.cmd, a.name) == ("notebook", "t7_toy")
    with pytest.raises(SystemExit):                        # the real registry has no T7
        cli.build_parser().parse_args(["notebook", "t7_toy", "--out", "results/t7"])
    assert "t7_toy" not in registry() and "t7_toy" not in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_cli_subcommands_are_the_registry_compute_stages():
    """Each compute stage is a subcommand with its Stage's options (finetune's --regime takes p1 as well)."""
    from nriqa_lib import cli
    ap = cli.build_parser()
    for name, st in REGISTRY.items():
        if st.is_notebook:
            continue
        args = [name] + (["--dataset", "clive"] if st.matrix else [])
        a = ap.parse_args(args)
        assert a.cmd == name and all(hasattr(a, o.keyword) for o in st.options)
    a = ap.parse_args(["finetune", "--dataset", "clive", "--regime", "p1", "--regime", "lora", "--backbone", "x"])
    assert a.regimes == ["p1", "lora"] and a.backbones == ["x"]
    with pytest.raises(SystemExit):
        ap.parse_args(["resolution", "--dataset", "clive", "--regime", "p1"])    # not an option of resolution


NOTEBOOK_STAGES = [n for n, s in REGISTRY.items() if s.is_notebook]


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOK_STAGES)
def test_notebook_is_built_from_its_readable_source(name):
    """Issue 24 item 5: notebooks/<name>.py (jupytext percent format) is the source; the .ipynb papermill runs is
    built from it byte for byte (`python scripts/make_notebooks.py`). (That an executed copy under results/ ran the
    same code cells is checked after a run by scripts/check_outputs.py.)"""
    import sys

    import nbformat
    sys.path.insert(0, str(REPO / "scripts"))
    from make_notebooks import build
    built = build(name)
    assert nbformat.writes(built) + "\n" == (REPO / "notebooks" / f"{name}.ipynb").read_text(), \
        f"notebooks/{name}.ipynb differs from notebooks/{name}.py: run python scripts/make_notebooks.py"
    assert "\n# %%" in (REPO / "notebooks" / f"{name}.py").read_text()          # a percent script, no JSON
    assert len(_code(built)) >= 3 and "parameters" in built.cells[1].metadata["tags"]
