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
