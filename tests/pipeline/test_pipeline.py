"""dvc.yaml against the code: declared == read (params from each stage's PARAMS, enforced at run time by
ParamsView; code deps cover every library file the stage's imports reach), and what each stage must depend on
so that no table is stale and no typo costs outputs."""
import subprocess

import pytest
import yaml

from conftest import REPO
from nriqa_lib.core.config import Params
from nriqa_lib.core.params import ParamsView, UndeclaredParam
from nriqa_lib.pipeline.declare import FOUNDATION, import_closure, runs_code, stage_files, stage_params
from nriqa_lib.pipeline.dvcfile import render
from nriqa_lib.pipeline.registry import registry

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
    """`python -m nriqa_lib.pipeline.dvcfile` regenerates dvc.yaml; a stale one fails here. It reads on a few screens
    (issue 38: at most 180 lines, none over 120 characters), and its compact text is the same data as the stages'
    declarations (the YAML parser reads back what :func:`document` says)."""
    from nriqa_lib.pipeline.dvcfile import WIDTH, document
    text = (REPO / "dvc.yaml").read_text()
    assert text == render()
    assert list(STAGE_DEFS) == list(REGISTRY)
    lines = text.splitlines()
    assert len(lines) <= 180 and max(map(len, lines)) <= WIDTH == 120, (len(lines), max(map(len, lines)))
    assert DVC == document()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_declared_equals_read(name):
    if name != "check":
        assert _params(name) == list(stage_params(name))
    deps = _deps(name)
    files = stage_files(name)
    for f in files:                             # every library file the stage can load is a dependency
        assert f in deps or any(f.startswith(d.rstrip("/") + "/") for d in deps), (name, f)
    for d in deps:              # a package folder only where the stage loads all of it (the foundation: any of it)
        if d.startswith("nriqa_lib/") and d.endswith("/"):
            inside = {str(f.relative_to(REPO)) for f in (REPO / d).rglob("*.py")
                      if "__pycache__" not in f.parts and runs_code(f)}
            loaded = inside & set(files)
            assert loaded if d == FOUNDATION else inside and loaded == inside, (name, d, sorted(inside - loaded))


def test_import_closure_follows_function_level_imports():
    files = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.stages.figures")}
    assert {"nriqa_lib/training/explain.py", "nriqa_lib/training/trainer.py", "nriqa_lib/reporting/plots.py"} <= files
    t1 = {str(f.relative_to(REPO)) for f in import_closure("nriqa_lib.tables.t1")}
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


def _outs(name):
    return [o if isinstance(o, str) else next(iter(o)) for o in STAGE_DEFS[name].get("outs", [])]


def _upstream(name):
    """The stages whose outputs ``name`` reads (a dep equal to, inside or around an output; matrix items as one)."""
    strip = lambda p: p.replace("${item.dataset}", "")     # noqa: E731
    deps = [strip(d) for d in _deps(name)]
    return {o_name for o_name in STAGE_DEFS if o_name != name for o in map(strip, _outs(o_name))
            if any(d == o or d.startswith(o.rstrip("/") + "/") or o.startswith(d.rstrip("/") + "/") for d in deps)}


def test_every_stage_waits_for_the_params_check():
    """`check` validates params.yaml first; a typo then stops `dvc repro` before DVC removes any output: every stage
    reads check's stamp or an output of a stage downstream of check (DVC runs upstream stages first)."""
    assert _params("check") == ["params.yaml"] and "results/params.ok" in str(STAGE_DEFS["check"]["outs"])
    after = {"check"}
    for _ in STAGE_DEFS:
        after |= {n for n in STAGE_DEFS if _upstream(n) & after}
    assert after == set(STAGE_DEFS), set(STAGE_DEFS) - after
    assert "results/params.ok" in _deps("synthetic")          # it reads nothing else of the pipeline


def test_a_corrected_mos_reaches_every_stage_that_reads_it():
    # every stage that reads a manifest depends on the folder: data.manifests may point a dataset at another
    # manifest (clive -> clive_p1), so a per-dataset file would miss the one actually read
    for name in ("heads", "zeroshot", "splits", "features", "finetune", "resolution", "data_overview", "cross",
                 "figures"):
        assert "data_manifests" in _deps(name), name
    # the tables read the MOS through predictions / scores, which depend on the manifests
    assert "results/heads" in _deps("t1") and "results/zeroshot" in _deps("t4")


def test_tables_rerun_when_the_datasets_or_backbones_change():
    for name in ("t1", "t2", "t3", "t4"):
        params = _params(name)
        assert "data.datasets" in params and "features.backbones" in params, name
    for name in ("t1", "t3"):
        assert "train.select_on" in _params(name)              # their captions state the protocol


def test_metrics_are_committed_and_restorable():
    """DVC lists one small file of headline metrics (results/summary.json, issue 25 item 6); every table's
    metrics.json is still an output committed to git (not cached), so `git diff` compares a change with the study."""
    metrics = [next(iter(m)) for st in STAGE_DEFS.values() for m in st.get("metrics", [])]
    assert metrics == ["results/summary.json"]
    from nriqa_lib.tables.registry import registry as tables
    for t in tables():
        if t.metrics:
            assert {f"results/{t.folder}/metrics.json": {"cache": False}} in STAGE_DEFS[t.name]["outs"]
    for f in ("results/t1/metrics.json", "results/summary.json", "results/summary.md", "results/summary_forest.png",
              "results/summary.csv", "dvc.lock"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f], cwd=REPO).returncode
        assert ignored == 1, f"{f} is git-ignored"      # 1 = not ignored: it is committed


def test_adding_a_table_reruns_no_other_stage():
    """The pipeline machinery is a declaration (what it says about a stage is written into dvc.yaml): no stage has it
    as a code dep; a table stage depends on its own module of nriqa_lib/tables only, so a new table re-runs no other
    table (the report, which names every table's claims, depends on them all)."""
    for name, st in STAGE_DEFS.items():
        deps = _deps(name)
        assert not [d for d in deps if d.startswith("nriqa_lib/pipeline")], name
        mine = [d for d in deps if d.startswith("nriqa_lib/tables")]
        if name == "report":
            assert mine == ["nriqa_lib/tables/"]
        elif REGISTRY[name].is_notebook:
            assert mine == [REGISTRY[name].module.replace(".", "/") + ".py"], name


def _stages_running(path: str) -> set[str]:
    """The stages whose code deps include the library file ``path``."""
    return {n for n in STAGE_DEFS for d in _deps(n) if d == path or (d.endswith("/") and path.startswith(d))}


def _downstream(names: set[str]) -> set[str]:
    out = set(names)
    for _ in STAGE_DEFS:
        out |= {n for n in STAGE_DEFS if _upstream(n) & out}
    return out


def test_editing_a_package_reruns_the_stages_that_run_it():
    """Issue 38: editing the model code re-runs the stages that build a model and no other (not splits, heads,
    the tables or the report: their inputs change only if the features do); editing the heads re-runs the stages that
    train one and what reads their outputs; a table's module re-runs that table and the report. (check is
    always_changed: it runs on every `dvc repro`, and its outputs change only with the params or the data.)"""
    assert _stages_running("nriqa_lib/backbones/models.py") == {"features", "zeroshot", "resolution", "finetune",
                                                                 "figures"}
    trains = {"heads", "cross", "finetune", "resolution", "figures"}
    for f in sorted((REPO / "nriqa_lib" / "heads").glob("*.py")):
        rel = str(f.relative_to(REPO))
        assert _stages_running(rel) - {"check"} <= _downstream(trains), rel
    assert _stages_running("nriqa_lib/heads/mlp.py") == trains
    assert _stages_running("nriqa_lib/tables/t3.py") == {"t3", "report"}
    assert _stages_running("nriqa_lib/analysis/pooled.py") == {n for n, s in REGISTRY.items()
                                                               if s.is_notebook and n != "data_overview"}
    for f in ("nriqa_lib/backbones/registry.py", "nriqa_lib/heads/registry.py"):   # names: no model, no torch
        assert not {"splits", "synthetic"} & _stages_running(f)


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


def test_a_notebook_names_its_files_after_params_it_declares():
    """Issue 38: a notebook stage's tag (its file names) is built from its own declared params only (T6's files were
    named after t1.head, which T6 does not read)."""
    from nriqa_lib.pipeline.tables import table_stage
    from nriqa_lib.tables.registry import registry as tables
    for st in [table_stage(t) for t in tables()] + [s for s in REGISTRY.values() if s.is_notebook]:
        assert st.tag_params(), st.name
        for used in st.tag_params():
            assert used in st.params or used.split(".")[0] in st.params, (st.name, used)


@pytest.mark.parametrize("text", ["- a list?", "12", "1.5e3", "yes", "on", "null", "~", "a: b", "a #b", "@x", "`x",
                                  "'q'", '"dq"', "x, y", "{a}", "[b]", "${item.dataset}", "a  b", " lead", "tab\there",
                                  "back\\slash", "ok/path_1.csv", "T2 (P1): the head's activation; 100 x SSIM",
                                  "a long " + "word " * 40 + "end", "0x1f", ".inf", "1_000", "+1", "0o17", "-.5"])
def test_dvc_yaml_writer_reads_back_any_string(text):
    """dvc.yaml's compact writer (plain where safe, double-quoted otherwise, folded at 120 columns) gives back every
    string, as a desc (block) and in a flow list, to PyYAML and to DVC's own reader (ruamel.yaml, YAML 1.2)."""
    from ruamel.yaml import YAML
    from nriqa_lib.pipeline.dvcfile import WIDTH, _entry
    desc = _entry("desc", text)
    assert max(map(len, desc)) <= WIDTH            # a long text is folded (a flow item is not: render() refuses it)
    lines = ["x:"] + desc + _entry("deps", [text, "b", text])
    doc = "\n".join(lines) + "\n"
    want = {"x": None, "desc": text, "deps": [text, "b", text]}
    doc = doc.replace("x:\n    ", "x:\n").replace("\n    ", "\n").replace("\n      ", "\n  ")
    assert yaml.safe_load(doc) == want, doc
    assert dict(YAML(typ="safe").load(doc)) == want, doc
