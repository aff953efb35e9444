"""The study's steps on a small fake results tree: P1 splits without val, single-split seeds, cross-dataset
selection, T3's best-fixed choice on val, the tables' designs. Features are made up (no backbone runs)."""
import numpy as np
import pandas as pd
import pytest

from conftest import make_image_dataset, write_manifest
from nriqa_lib.config import Params
from nriqa_lib.data.splits import make_splits, save_splits
from nriqa_lib.features import FeatureSet, save_feature_set

BB = "tf_efficientnet_lite0"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Two toy datasets: 'toya' (official split with a `set` column), 'toyb' (plain); features that carry the MOS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(tmp_path / "m"))
    g = np.random.default_rng(0)
    for name, n in (("toya", 60), ("toyb", 45)):
        df = make_image_dataset(tmp_path / name, n=n, size=(16, 16), seed=len(name) + n)
        if name == "toya":
            df["set"] = np.where(np.arange(n) < 36, "train", np.where(np.arange(n) < 45, "val", "test"))
        write_manifest(tmp_path / "m", name, df)
        for bb in (BB, f"random_{BB}"):
            X = np.c_[df["mos"].to_numpy()[:, None] * np.ones((1, 4)), g.normal(size=(n, 12))].astype(np.float32)
            X[:, :4] += 0.3 * g.normal(size=(n, 4))
            save_feature_set(FeatureSet(X, list(df["image"]), {"key": "fake"}), tmp_path / "features" / name / bb)
    p = Params()
    p.data.datasets = ["toya", "toyb"]
    p.data.roots = {"toya": str(tmp_path / "toya"), "toyb": str(tmp_path / "toyb")}
    p.features.backbones = [BB, f"random_{BB}"]
    p.train.epochs, p.train.hidden, p.train.batch_size, p.train.lr = 3, 16, 8, 3e-3
    p.t2.heads, p.t2.reference = ["B", "sigmoid"], "B"
    p.t3.candidates = ["relu", "sigmoid"]
    p.stats.n_boot = 200
    p.t5.datasets, p.t5.backbones, p.t5.policies = ["toyb"], [BB], ["squash", "center_crop", "squash_96"]
    return tmp_path, p


def _splits(p, scheme):
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.paths import splits_path
    for d in p.data.datasets:
        m = load_dataset(d, p.data.roots, decode=False)
        save_splits(make_splits(m.table, scheme(d), n_splits=4), splits_path(d))


def test_heads_and_cross_run_on_p1_splits_selected_on_test(tree):
    """The paper profile: P1 splits (no val part), select_on test, cross-dataset step with B_Gated."""
    from nriqa_lib.protocol import cross_dataset, cross_heads, run_heads
    _, p = tree
    p.train.select_on = "test"
    _splits(p, lambda d: "p1")
    pred, shares = run_heads(p, "toya", BB)                  # IndexError (object dtype val index) before the fix
    assert set(pred["part"]) == {"train", "test"} and pred["split"].nunique() == 3
    assert {"B_Gated", "kway"} <= set(pred["head"]) and len(shares)
    heads = cross_heads(p)
    assert "B_Gated" in heads and "ridge" not in heads
    cp = cross_dataset(p, "toya", "toyb", BB, heads)         # 'model selection on val' ValueError before the fix
    assert set(cp["head"]) == set(heads) and cp.groupby(["head", "split"]).size().eq(45).all()


def test_tiny_pipeline_end_to_end(tree):
    """Every stage under its declared params (a ParamsView raises on anything else), a single-split dataset
    with seeds, the cross and zeroshot stages, the tables, and one notebook rendered through papermill."""
    import dataclasses
    import shutil
    import yaml
    from conftest import REPO
    from nriqa_lib import stages
    from nriqa_lib.analysis.common import designs
    from nriqa_lib.analysis.t1 import t1_backbones
    from nriqa_lib.analysis.t2 import t2_activations
    from nriqa_lib.analysis.t3 import t3_selection
    from nriqa_lib.analysis.t4 import t4_zeroshot
    from nriqa_lib.paths import heads_dir
    from nriqa_lib.reporting import report
    from nriqa_lib.stages.notebook import run_notebook
    tmp, p = tree
    p.train.single_split_seeds = 5
    p.t2.cross = [["toyb", "toya"]]
    p.t4.clip_models = []
    _splits(p, lambda d: "official" if d == "toya" else "random")
    for d in p.data.datasets:
        stages.stage("heads").load().run(stages.view(p, "heads"), d)
        stages.stage("zeroshot").load().run(stages.view(p, "zeroshot"), d)
    stages.stage("cross").load().run(stages.view(p, "cross"))
    pred = pd.read_csv(heads_dir("toya", BB) / "predictions.csv")
    test = pred.query("head == 'B' and part == 'test'")
    assert test["split"].nunique() == 5                       # five seeds on the one official partition
    assert test.groupby("split")["image"].apply(frozenset).nunique() == 1
    des = designs(p.data.datasets)
    assert des["toya"].kind == "shared" and des["toyb"].kind == "splits"
    t1 = t1_backbones(stages.view(p, "t1_backbones"), tmp / "results" / "t1")
    s = t1["summary"].query("dataset == 'toya' and metric == 'srcc'")
    assert (s["sd"] > 0).all() and s["ci_kind"].str.contains("two-level").all()
    assert (s["ci_high"] - s["ci_low"] > 0.05).all()        # seeds + test images, not +- 0.000
    t = t1["tests"].query("dataset == 'toya'")
    assert t["test"].str.startswith("two-level").all() and t["p"].between(0, 1).all()
    t2 = t2_activations(stages.view(p, "t2_activations"), tmp / "results" / "t2")
    assert "B_Gated" in set(t2["cross_tests"]["a"]) and t2["cross_tests"]["test"].str.startswith("two-level").all()
    t3 = t3_selection(stages.view(p, "t3_selection"), tmp / "results" / "t3")
    assert "highest mean val SRCC" in (tmp / "results" / "t3" / "tables" / "t3_selection.md").read_text()
    assert set(t3["best_fixed"].columns) >= {"best_fixed_head", "best_fixed_head_val_srcc"}
    t4 = t4_zeroshot(stages.view(p, "t4_zeroshot"), tmp / "results" / "t4")
    assert len(t4["tests"]) == 4 and t4["tests"]["claim"].str.startswith("magnitude cue (").all()
    for claim, g in t4["tests"].groupby("claim"):            # one claim, one score
        assert g["a"].str.split(": ").str[1].nunique() == 1 and g["a"].str.split(": ").str[1].iloc[0] in claim
    assert set(t4["pooled"]["claim"]) == set(t4["tests"]["claim"]) and (t4["pooled"]["k"] == 2).all()
    stages.stage("resolution").load().run(stages.view(p, "resolution"), "toyb")
    from nriqa_lib.analysis.t5 import t5_resolution
    t5 = t5_resolution(stages.view(p, "t5_resolution"), tmp / "results" / "t5")
    assert set(t5["tests"]["a"]) == {"center_crop", "squash_96"} and set(t5["tests"]["head"]) == {"ridge", "B_Sig"}
    assert len(t5["pooled"]) == 2 and (t5["pooled"]["k"] == 1).all() and (t5["pooled"]["cells"] == 2).all()
    assert t5["cost"].set_index("policy")["gflops_per_image"]["squash_96"] < \
        t5["cost"].set_index("policy")["gflops_per_image"]["squash"]        # 96 px < lite0's 224 px
    c = report.claims(tmp / "results", p.stats.alpha)
    assert "ours: input policy center_crop beats squash" in set(c["claim"])
    # every pooled row of every table reaches the claims and the summary (issue 21: T4's did not)
    npooled = sum(len(pd.read_csv(f)) for f in (tmp / "results").glob("t*/tables/*_pooled.csv"))
    pooled_claims = c[c["scope"] != "cell"]
    assert npooled > 0 and len(pooled_claims) == npooled
    text = report.summary(c)
    for claim in pooled_claims["claim"].unique():
        assert f"**{claim}**" in text and "pooled (human-rated; " in text.split(f"**{claim}**")[1].split("\n")[0]
    assert pooled_claims["p_study"].notna().all() and (pooled_claims["p_study"] >= pooled_claims["p_holm"] - 1e-12).all()
    assert {"ours: pretrained features beat a random-init control", "P1: sigmoid beats ReLU",
            "P1: B_Gated generalises better than B (cross-dataset)"} <= set(c["claim"])
    # issue 25 item 1: the findings are the human-rated pooled rows, signed as claimed, CIs inside [-2, 2]
    import json as _json
    from nriqa_lib.reporting import summary as sm
    F = sm.findings(tmp / "results", p.stats.alpha)
    hum = c[c["scope"] == "pooled, human-rated"]
    assert len(F) == len(hum) > 0 and list(F["claim"]) == list(hum["claim"])
    np.testing.assert_allclose(F["estimate"], hum["srcc_diff"], atol=1e-4)   # claims() rounds to 4 digits
    assert ((F["ci_low"] <= F["estimate"]) & (F["estimate"] <= F["ci_high"])).all()
    assert F["ci_low"].ge(-2).all() and F["ci_high"].le(2).all()
    t1p = pd.read_csv(tmp / "results/t1/tables/t1_pooled.csv").query("scope == 'human-rated'").iloc[0]
    ctrl = F[F["claim"] == "ours: pretrained features beat a random-init control"].iloc[0]
    a_is_ctrl = t1p["pair"].startswith("random_")                      # estimate is a - b: flipped for a control
    sign = -1 if a_is_ctrl else 1
    assert ctrl["estimate"] == pytest.approx(sign * t1p["estimate"])
    assert sorted([ctrl["ci_low"], ctrl["ci_high"]]) == pytest.approx(sorted(np.clip([sign * t1p["ci_low"],
                                                                                       sign * t1p["ci_high"]], -2, 2)))
    files = sm.write_summary(F, tmp)
    assert all(f.is_file() for f in files)
    md = (tmp / sm.SUMMARY_MD).read_text()
    assert md.count("\n| ") == len(F) and "unadjusted" in md and "ours: pretrained features beat a random-init control" in md
    js = _json.loads((tmp / sm.SUMMARY_JSON).read_text())
    assert len(js) == len(F) and all(v["ci_low"] <= v["estimate"] <= v["ci_high"] for v in js.values())
    readme = tmp / "README.md"
    readme.write_text(f"# x\n\n{sm.START}\nold\n{sm.END}\n\nrest\n")
    assert sm.update_readme(readme, tmp / sm.SUMMARY_MD) and sm.readme_block(readme.read_text()) == md
    assert not sm.update_readme(readme, tmp / sm.SUMMARY_MD) and readme.read_text().endswith("\n\nrest\n")
    # a notebook stage through papermill, reading the same tree
    shutil.copytree(REPO / "notebooks", tmp / "notebooks")
    raw = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
    (tmp / "params.yaml").write_text(yaml.safe_dump(json_ready(raw)))
    run_notebook("t1_backbones", "results/t1", "params.yaml", "e2e")
    html = (tmp / "results" / "t1" / "t1_backbones__e2e.html").read_text()
    assert "toya" in html and "±" in html and "Verdict:" in html and '"stderr"' not in \
        (tmp / "results" / "t1" / "t1_backbones__e2e.ipynb").read_text()
    # issue 25 item 3: a kernel started where JupyterLab starts it (the notebook's folder) runs the notebook after a
    # parameter change, and the executed copy re-runs from results/t1/: paths resolve from the repository root
    import nbclient
    import nbformat
    shutil.copy(REPO / "dvc.yaml", tmp / "dvc.yaml")
    for folder, src, out in ((tmp / "notebooks", tmp / "notebooks" / "t1_backbones.ipynb", "results/t1_lab"),
                             (tmp / "results" / "t1", tmp / "results" / "t1" / "t1_backbones__e2e.ipynb", "results/t1")):
        nb = nbformat.read(src, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = cell.source.replace('out_dir = "results/t1"', f'out_dir = "{out}"')
        nbclient.NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
        assert (tmp / out / "tables" / "t1_backbones.csv").is_file(), folder
        assert not any(o.get("name") == "stderr" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # ... and so does every other notebook of the study, from notebooks/ with its out_dir changed (the report last:
    # it reads the tables the others wrote)
    from nriqa_lib.stages.registry import registry
    shutil.copytree(REPO / "references", tmp / "references")      # the report's published numbers
    nbs = [s for s in registry().values() if s.is_notebook and s.name != "t1_backbones"]
    for st in sorted(nbs, key=lambda s: s.name == "report"):
        nb = nbformat.read(tmp / "notebooks" / f"{st.name}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert f'out_dir = "{st.out_dir}"' in cell.source, st.name
        cell.source = cell.source.replace(f'out_dir = "{st.out_dir}"', f'out_dir = "{st.out_dir}_lab"')
        nbclient.NotebookClient(nb, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp / "notebooks")}}).execute()
        assert (tmp / f"{st.out_dir}_lab").is_dir(), st.name
        assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def json_ready(raw):
    import dataclasses
    return {k: dataclasses.asdict(v) for k, v in raw.items()}


def test_t3_best_fixed_is_chosen_on_val_not_test():
    from nriqa_lib.analysis.t3 import best_fixed
    g = np.random.default_rng(0)
    y = g.random(40)
    rows = []
    # 'sigmoid' is perfect on test but noise on val; 'B' is good on val and mediocre on test
    for head, val_noise, test_noise in (("B", 0.05, 0.5), ("sigmoid", 5.0, 0.0)):
        for k in range(3):
            for part, noise in (("val", val_noise), ("test", test_noise)):
                rows.append(pd.DataFrame({"dataset": "d", "backbone": "b", "head": head, "split": k, "part": part,
                                          "image": np.arange(40), "mos": y, "pred": y + noise * g.normal(size=40)}))
    pred = pd.concat(rows, ignore_index=True)
    assert best_fixed(pred, ["B", "sigmoid"], "val")["best_fixed_head"].item() == "B"
    assert best_fixed(pred, ["B", "sigmoid"], "test")["best_fixed_head"].item() == "sigmoid"
