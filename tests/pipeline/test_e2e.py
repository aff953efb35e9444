"""The study end to end on a toy tree (two datasets, made-up features; no backbone runs): the compute stages under
their declared params run once for the module (a ParamsView raises on anything else), then one test per table, the
report and the notebooks, so a failure names the table. Issue 24 item 7."""
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import BB, REPO, make_splits_files, make_tree
from nriqa_lib.pipeline import registry as stages    # stages.stage(name), stages.view(p, name)
from nriqa_lib.stages.notebook import table_inputs

pytestmark = pytest.mark.xdist_group("e2e")     # one worker builds the module fixture (scripts/test.sh)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(tree root, params): heads, zeroshot, cross and resolution stages run on the toy tree (toya: one official
    split trained with 5 seeds; toyb: random splits)."""
    with pytest.MonkeyPatch.context() as mp:
        tmp, p = make_tree(tmp_path_factory.mktemp("study"), mp)
        p.train.single_split_seeds = 5
        p.t2.cross = [["toyb", "toya"]]
        p.t4.clip_models = []
        make_splits_files(p, lambda d: "official" if d == "toya" else "random")
        for d in p.data.datasets:
            stages.stage("heads").load().run(stages.view(p, "heads"), d)
            stages.stage("zeroshot").load().run(stages.view(p, "zeroshot"), d)
        stages.stage("cross").load().run(stages.view(p, "cross"))
        stages.stage("resolution").load().run(stages.view(p, "resolution"), "toyb")
        yield tmp, p


@pytest.fixture(scope="module")
def tables(study):
    """Each table computed once, on first use (a table that fails fails its own tests and the report's)."""
    from nriqa_lib.tables.t1 import t1_backbones
    from nriqa_lib.tables.t2 import t2_activations
    from nriqa_lib.tables.t3 import t3_selection
    from nriqa_lib.tables.t4 import t4_zeroshot
    from nriqa_lib.tables.t5 import t5_resolution
    from nriqa_lib.reporting.export import write_result
    tmp, p = study
    calls = {"t1": lambda i: write_result(tmp / "results" / "t1", t1_backbones(i("t1"), p.t1.head)),
             "t2": lambda i: write_result(tmp / "results" / "t2", t2_activations(i("t2"), p.t2)),
             "t3": lambda i: write_result(tmp / "results" / "t3", t3_selection(i("t3"), p.t2)),
             "t4": lambda i: write_result(tmp / "results" / "t4", t4_zeroshot(i("t4"), p.t4.clip_models)),
             "t5": lambda i: write_result(tmp / "results" / "t5",
                                          t5_resolution(i("t5"), p.t5, p.features.test_time))}
    done = {}

    def table(name: str):
        if name not in done:
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(tmp)
                mp.setenv("NRIQA_MANIFEST_DIR", str(tmp / "m"))
                done[name] = calls[name](lambda stage: table_inputs(stages.view(p, stage)))
        return done[name]
    return table


@pytest.fixture
def at_study(study, monkeypatch):
    tmp, p = study
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(tmp / "m"))
    return tmp, p


def test_stages_train_seeds_on_a_single_split(at_study):
    from nriqa_lib.analysis.design import designs
    from nriqa_lib.core.paths import heads_dir, load_split_files
    tmp, p = at_study
    pred = pd.read_csv(heads_dir("toya", BB) / "predictions.csv")
    test = pred.query("head == 'B' and part == 'test'")
    assert test["split"].nunique() == 5                       # five seeds on the one official partition
    assert test.groupby("split")["image"].apply(frozenset).nunique() == 1
    des = designs(load_split_files(p.data.datasets))
    assert des["toya"].kind == "shared" and des["toyb"].kind == "splits"


def test_t1(at_study, tables):
    t1 = tables("t1")
    s = t1["summary"].query("dataset == 'toya' and metric == 'srcc'")
    assert (s["sd"] > 0).all() and s["ci_kind"].str.contains("two-level").all()
    assert (s["ci_high"] - s["ci_low"] > 0.05).all()        # seeds + test images, not +- 0.000
    t = t1["tests"].query("dataset == 'toya'")
    assert t["test"].str.startswith("two-level").all() and t["p"].between(0, 1).all()


def test_t2(at_study, tables):
    t2 = tables("t2")
    assert "B_Gated" in set(t2["cross_tests"]["a"]) and t2["cross_tests"]["test"].str.startswith("two-level").all()


def test_t3(at_study, tables):
    tmp, _ = at_study
    t3 = tables("t3")
    assert "highest mean val SRCC" in (tmp / "results" / "t3" / "tables" / "t3_selection.md").read_text()
    assert set(t3["best_fixed"].columns) >= {"best_fixed_head", "best_fixed_head_val_srcc"}


def test_t4(at_study, tables):
    """Per dataset: Q_mag, its absolute companion and the L2 norm vs the control's 3 initialisations (issue 39)."""
    t4 = tables("t4")
    tests = t4["tests"]
    assert len(tests) == 6 and tests["claim"].str.startswith("magnitude cue (").all()
    assert set(tests["b"].str.split(": ").str[0]) == {f"random_{BB} (3 inits)"}
    for claim, g in tests.groupby("claim"):            # one claim, one score
        assert g["a"].str.split(": ").str[1].nunique() == 1
        assert g["a"].str.split(": ").str[1].iloc[0].strip("|") in claim
        assert ("absolute SRCC" in claim) == g["a"].str.contains("|", regex=False).all()
    assert set(t4["pooled"]["claim"]) == set(tests["claim"]) and (t4["pooled"]["k"] == 2).all()
    # the estimate is the pretrained cue's SRCC minus the mean over the control's inits (|SRCC| for the companion)
    rows = t4["rows"].set_index(["dataset", "source", "score"])["srcc"]
    for r in tests.itertuples():
        score = r.a.split(": ", 1)[1].strip("|")
        f = abs if "absolute" in r.claim else (lambda v: v)
        inits = [f(rows[(r.dataset, s, score)]) for s in (f"random_{BB}", f"random_{BB}_init1", f"random_{BB}_init2")]
        assert r.srcc_diff == pytest.approx(f(rows[(r.dataset, BB, score)]) - np.mean(inits), abs=1e-9)
    # each cell's replicates are its own: a one-cell dataset's combined test has that cell's se and df (the
    # replicates were filed one row off once: each cell then pooled its neighbour's)
    from nriqa_lib.analysis.pooled import dataset_cells
    assert len(tests.attrs["boot_dists"]) == len(tests)
    cells = dataset_cells(tests, ["claim"], None, "srcc_diff").set_index(["claim", "dataset"])
    for r in tests.itertuples():
        c = cells.loc[(r.claim, r.dataset)]
        assert c["se"] == pytest.approx(r.se, rel=1e-12) and c["df"] == r.df


def test_t5(at_study, tables):
    t5 = tables("t5")
    assert set(t5["tests"]["a"]) == {"center_crop", "squash_96"} and set(t5["tests"]["head"]) == {"ridge", "B_Sig"}
    assert len(t5["pooled"]) == 2 and (t5["pooled"]["k"] == 1).all() and (t5["pooled"]["cells"] == 2).all()
    assert t5["cost"].set_index("policy")["gflops_per_image"]["squash_96"] < \
        t5["cost"].set_index("policy")["gflops_per_image"]["squash"]        # 96 px < lite0's 224 px


def test_report_claims_and_findings(at_study, tables):
    """Every pooled row of every table reaches the claims and the summary (issue 21: T4's did not); the findings
    are the human-rated pooled rows, signed as claimed, CIs inside [-2, 2] (issue 25 item 1)."""
    from nriqa_lib.report import claims as report
    from nriqa_lib.report import summary as sm
    tmp, p = at_study
    for t in ("t1", "t2", "t3", "t4", "t5"):
        tables(t)
    c = report.claims(tmp / "results", p.stats.alpha)
    assert "ours: input policy center_crop beats squash" in set(c["claim"])
    npooled = sum(len(pd.read_csv(f)) for f in (tmp / "results").glob("t*/tables/*_pooled.csv"))
    pooled_claims = c[c["scope"] != "cell"]
    assert npooled > 0 and len(pooled_claims) == npooled
    text = report.summary(c)
    for claim in pooled_claims["claim"].unique():
        assert f"**{claim}**" in text and "pooled (human-rated; " in text.split(f"**{claim}**")[1].split("\n")[0]
    hum = pooled_claims[pooled_claims["scope"] == "pooled, human-rated"]
    assert hum["p_adj"].notna().all() and (hum["p_adj"] >= hum["p"] - 1e-12).all()
    assert {"control: pretrained features beat a random-init control", "P1: sigmoid beats ReLU",
            "P1: B_Gated generalises better than B (cross-dataset)"} <= set(c["claim"])
    F = sm.findings(tmp / "results", p.stats.alpha)
    hum = c[c["scope"] == "pooled, human-rated"]
    assert len(F) == len(hum) > 0 and list(F["claim"]) == list(hum["claim"])
    np.testing.assert_allclose(F["estimate"], hum["srcc_diff"], atol=1e-4)   # claims() rounds to 4 digits
    assert ((F["ci_low"] <= F["estimate"]) & (F["estimate"] <= F["ci_high"])).all()
    assert F["ci_low"].ge(-2).all() and F["ci_high"].le(2).all()
    t1p = pd.read_csv(tmp / "results/t1/tables/t1_pooled.csv").query("scope == 'human-rated'").iloc[0]
    ctrl = F[F["claim"] == "control: pretrained features beat a random-init control"].iloc[0]
    a_is_ctrl = t1p["pair"].startswith("random_")                      # estimate is a - b: flipped for a control
    sign = -1 if a_is_ctrl else 1
    assert ctrl["estimate"] == pytest.approx(sign * t1p["estimate"])
    assert sorted([ctrl["ci_low"], ctrl["ci_high"]]) == pytest.approx(sorted(np.clip([sign * t1p["ci_low"],
                                                                                       sign * t1p["ci_high"]], -2, 2)))
    files = sm.write_summary(F, tmp)
    assert all(f.is_file() for f in files)
    md = (tmp / sm.SUMMARY_MD).read_text()
    assert md.count("\n| ") == len(F) and "simultaneous" in md and "control: pretrained features beat a random-init control" in md
    js = json.loads((tmp / sm.SUMMARY_JSON).read_text())
    assert len(js) == len(F) and all(v["ci_low"] <= v["estimate"] <= v["ci_high"] for v in js.values())
    readme = tmp / "README.md"
    readme.write_text(f"# x\n\n{sm.START}\nold\n{sm.END}\n\nrest\n")
    assert sm.update_readme(readme, tmp / sm.SUMMARY_MD) and sm.readme_block(readme.read_text()) == md
    assert not sm.update_readme(readme, tmp / sm.SUMMARY_MD) and readme.read_text().endswith("\n\nrest\n")


def test_notebooks_render_and_rerun_in_jupyterlab(at_study, tables):
    """T1 through papermill on the same tree; then (issue 25 item 3) a kernel started where JupyterLab starts it
    (the notebook's folder) runs the notebook after a parameter change, the executed copy re-runs from
    results/t1/, and every other notebook of the study runs from notebooks/ with its out_dir changed (the report
    last: it reads the tables the others wrote)."""
    import nbclient
    import nbformat
    from nriqa_lib.stages.notebook import run_notebook
    from nriqa_lib.pipeline.registry import registry
    tmp, p = at_study
    for t in ("t1", "t2", "t3", "t4", "t5"):
        tables(t)
    shutil.copytree(REPO / "notebooks", tmp / "notebooks")
    (tmp / "params.yaml").write_text(yaml.safe_dump(p.model_dump()))
    run_notebook("t1", "results/t1", "params.yaml", "e2e")
    html = (tmp / "results" / "t1" / "t1__e2e.html").read_text()
    assert "toya" in html and "±" in html and "Verdict:" in html and '"stderr"' not in \
        (tmp / "results" / "t1" / "t1__e2e.ipynb").read_text()
    shutil.copy(REPO / "dvc.yaml", tmp / "dvc.yaml")
    for folder, src, out in ((tmp / "notebooks", tmp / "notebooks" / "t1.ipynb", "results/t1_lab"),
                             (tmp / "results" / "t1", tmp / "results" / "t1" / "t1__e2e.ipynb", "results/t1")):
        nb = nbformat.read(src, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = re.sub(r'out_dir = "[^"]*"', f'out_dir = "{out}"', cell.source, count=1)
        nbclient.NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
        assert (tmp / out / "tables" / "t1_backbones.csv").is_file(), folder
        assert not any(o.get("name") == "stderr" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    shutil.copytree(REPO / "references", tmp / "references")      # the report's published numbers
    nbs = [s for s in registry().values() if s.is_notebook and s.name != "t1"]
    for st in sorted(nbs, key=lambda s: s.name == "report"):
        nb = nbformat.read(tmp / "notebooks" / f"{st.name}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        folder = st.out_dir.split("/", 1)[1]
        assert f'out_dir = "scratch/{folder}"' in cell.source, st.name       # never the pipeline's own folder
        cell.source = cell.source.replace(f'out_dir = "scratch/{folder}"', f'out_dir = "{st.out_dir}_lab"')
        nbclient.NotebookClient(nb, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp / "notebooks")}}).execute()
        assert (tmp / f"{st.out_dir}_lab").is_dir(), st.name
        assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
