"""nriqa_lib.training.protocol on a toy tree: P1 splits without val, selection on test, the cross-dataset step."""
import pytest

from conftest import BB, make_splits_files, make_tree
from nriqa_lib.core.paths import load_splits


@pytest.fixture
def tree(tmp_path, monkeypatch):
    return make_tree(tmp_path, monkeypatch)


def test_heads_and_cross_run_on_p1_splits_selected_on_test(tree):
    """The paper profile: P1 splits (no val part), select_on test, cross-dataset step with B_Gated."""
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.features.sets import load_feature_set
    from nriqa_lib.core.paths import features_dir, splits_path
    from nriqa_lib.training.protocol import cross_dataset, cross_heads, heads_for, mos_of, run_heads
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


def test_seeds_per_split_train_more_heads_and_the_tables_average_them(tree):
    """Issue 39: ``train.seeds_per_split`` S > 1 trains S heads per split (seed 0 is the one-seed run's head, the others
    seed + 7919 s); a split's metric is then the mean of its S heads' metrics (scipy by hand); a one-split
    dataset keeps its single_split_seeds and gets no seed column."""
    import numpy as np
    from scipy import stats as S
    from nriqa_lib.analysis.compare import split_metrics
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.features.sets import load_feature_set
    from nriqa_lib.core.paths import features_dir, splits_path
    from nriqa_lib.training.protocol import jobs_from_splits, mos_of, run_heads
    _, p = tree
    make_splits_files(p, lambda d: "official" if d == "toya" else "random")
    fs = load_feature_set(features_dir("toyb", BB))
    y = mos_of(load_dataset("toyb", p.data.roots), fs.images)
    sp = load_splits(splits_path("toyb"))
    one = jobs_from_splits(fs.images, sp, seed_offset=5, seeds_per_split=1)
    three = jobs_from_splits(fs.images, sp, seed_offset=5, seeds_per_split=3)
    assert len(three) == 3 * len(one) and [j.seed for j in three[::3]] == [j.seed for j in one]
    assert [j.seed - three[3 * (i // 3)].seed for i, j in enumerate(three)] == [0, 7919, 15838] * len(one)
    assert [j.tags for j in three[:3]] == [{"split": 0, "seed": s} for s in range(3)]
    single = load_splits(splits_path("toya"))
    toya = load_feature_set(features_dir("toya", BB)).images
    assert "seed" not in jobs_from_splits(toya, single, seeds_per_split=3, single_split_seeds=2)[0].tags
    p.train.seeds_per_split = 1
    base, _ = run_heads(fs, y, sp, ["B"], p.train, p.t3, "toyb")
    p.train.seeds_per_split = 3
    pred, _ = run_heads(fs, y, sp, ["B"], p.train, p.t3, "toyb")
    assert "seed" not in base and sorted(pred["seed"].unique()) == [0, 1, 2]
    s0 = pred[pred["seed"] == 0].drop(columns="seed").reset_index(drop=True)
    np.testing.assert_allclose(s0["pred"], base["pred"], rtol=0, atol=1e-9)   # seed 0: the one-seed heads
    rows = split_metrics(pred, ["head"])
    test = pred[pred["part"] == "test"]
    for k, g in test.groupby("split"):
        want = np.mean([S.spearmanr(h["pred"], h["mos"])[0] for _, h in g.groupby("seed")])
        got = rows[(rows["split"] == k) & (rows["metric"] == "srcc")]["value"]
        assert len(got) == 1 and got.iloc[0] == pytest.approx(want, abs=1e-12)
    assert list(rows.columns) == list(split_metrics(base, ["head"]).columns)
    assert list(rows["metric"][:3]) == list(split_metrics(base, ["head"])["metric"][:3])   # the same row order
