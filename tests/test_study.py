"""The study's steps on a small fake results tree: P1 splits without val, single-split seeds, cross-dataset
selection, T3's best-fixed choice on val, the tables' designs. Features are made up (no backbone runs)."""
import numpy as np
import pandas as pd
import pytest

from conftest import make_image_dataset, write_manifest
from nriqa_lib.config import Params
from nriqa_lib.data.splits import load_splits, make_splits, save_splits
from nriqa_lib.features import FeatureSet, save_feature_set

BB = "tf_efficientnet_lite0"


def make_tree(tmp_path, monkeypatch):
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


@pytest.fixture
def tree(tmp_path, monkeypatch):
    return make_tree(tmp_path, monkeypatch)


def make_splits_files(p, scheme):
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.paths import splits_path
    for d in p.data.datasets:
        m = load_dataset(d, p.data.roots, decode=False)
        save_splits(make_splits(m.table, scheme(d), n_splits=4), splits_path(d))


def test_heads_and_cross_run_on_p1_splits_selected_on_test(tree):
    """The paper profile: P1 splits (no val part), select_on test, cross-dataset step with B_Gated."""
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.features import load_feature_set
    from nriqa_lib.paths import features_dir, splits_path
    from nriqa_lib.protocol import cross_dataset, cross_heads, heads_for, mos_of, run_heads
    _, p = tree
    p.train.select_on = "test"
    make_splits_files(p, lambda d: "p1")
    fa, fb = load_feature_set(features_dir("toya", BB)), load_feature_set(features_dir("toyb", BB))
    ya = mos_of(load_dataset("toya", p.data.roots), fa.images)
    yb = mos_of(load_dataset("toyb", p.data.roots), fb.images)
    sa = load_splits(splits_path("toya"))
    pred, shares = run_heads(fa, ya, sa, heads_for(BB, p.t1, p.t2), p.train, p.t3, "toya")   # IndexError before the fix
    assert set(pred["part"]) == {"train", "test"} and pred["split"].nunique() == 3
    assert {"B_Gated", "kway"} <= set(pred["head"]) and len(shares)
    heads = cross_heads(p.t2)
    assert "B_Gated" in heads and "ridge" not in heads
    cp = cross_dataset(fa, ya, sa, fb, yb, heads, p.train, p.t3, "toya")   # 'model selection on val' ValueError before
    assert set(cp["head"]) == set(heads) and cp.groupby(["head", "split"]).size().eq(45).all()


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
