"""Issue 13: pooled verdicts (random effects), power in splits, forest plots, splits beyond the published 10."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import needs_shared, LABELS
from nriqa_lib.stats import random_effects, splits_for_power


def test_random_effects_equals_statsmodels_dersimonian_laird():
    from statsmodels.stats.meta_analysis import combine_effects
    y, se = np.array([0.1, 0.5, -0.2, 0.3]), np.array([0.1, 0.14, 0.12, 0.2])
    r = random_effects(y, se)
    sm = combine_effects(y, se ** 2, method_re="dl")
    assert r["tau2"] == pytest.approx(sm.tau2) and r["tau2"] > 0
    assert r["estimate"] == pytest.approx(sm.mean_effect_re)
    assert r["se"] == pytest.approx(sm.sd_eff_w_re)
    assert r["q"] == pytest.approx(sm.q) and r["i2"] == pytest.approx(sm.i2)
    assert r["p"] == pytest.approx(2 * stats.norm.sf(abs(sm.mean_effect_re / sm.sd_eff_w_re)))


def test_random_effects_without_heterogeneity_is_the_fixed_effect():
    """Q < k - 1: tau^2 truncated at 0 (DerSimonian & Laird), so the pooled estimate is the inverse-variance
    mean; by hand: w = 100, 50, 66.7."""
    y, se = np.array([0.1, 0.05, 0.2]), np.sqrt([0.01, 0.02, 0.015])
    r = random_effects(y, se)
    w = 1 / se ** 2
    assert r["tau2"] == 0 and r["i2"] == 0
    assert r["estimate"] == pytest.approx((w * y).sum() / w.sum())
    assert r["se"] == pytest.approx(np.sqrt(1 / w.sum()))
    one = random_effects([0.2], [0.1])
    assert one["estimate"] == pytest.approx(0.2) and one["ci_low"] == pytest.approx(0.2 - 1.959964 * 0.1, abs=1e-6)


def _nb_power(delta, sd, J, n_tr, n_te, alpha):
    nc = delta / (sd * np.sqrt(1 / J + n_te / n_tr))
    tc = stats.t.ppf(1 - alpha / 2, J - 1)
    return stats.nct.sf(tc, J - 1, nc) + stats.nct.cdf(-tc, J - 1, nc)


def test_splits_for_power_against_scipys_noncentral_t():
    J = splits_for_power(0.05, 0.03, 813, 232, 0.05)
    assert np.isfinite(J) and J > 2
    assert _nb_power(0.05, 0.03, int(J), 813, 232, 0.05) >= 0.8
    assert _nb_power(0.05, 0.03, int(J) - 1, 813, 232, 0.05) < 0.8
    assert splits_for_power(0.03, 0.03, 813, 232, 0.05) == float("inf")      # nc never exceeds 1.87
    # the corrected variance never falls below sd^2 n_test/n_train: a small effect is out of reach
    assert splits_for_power(0.005, 0.05, 813, 232, 0.05) == float("inf")
    from nriqa_lib.stats import nb_power
    for J in (3, 10, 40):
        assert nb_power(0.04, 0.03, J, 813, 232, 0.05) == pytest.approx(_nb_power(0.04, 0.03, J, 813, 232, 0.05),
                                                                          abs=1e-6)


def test_pooled_rows_and_forest(tmp_path):
    from types import SimpleNamespace

    from nriqa_lib.analysis.common import Design, pooled, pooled_outputs
    tests = pd.DataFrame({"a": ["sigmoid"] * 3 + ["gelu"] * 2, "dataset": ["clive"] * 5,
                          "backbone": ["l0", "l1", "l2", "l0", "l1"], "diff": [0.01, 0.02, 0.015, -0.01, 0.0],
                          "se": [0.01, 0.012, 0.011, 0.02, 0.02], "sd_diff": [0.02] * 5, "n_splits": [10] * 5,
                          "test": ["Nadeau-Bengio corrected t"] * 5})
    tests["ci_low"], tests["ci_high"] = tests["diff"] - 0.02, tests["diff"] + 0.02
    des = {"clive": Design("splits", 813, 232)}
    pool = pooled(tests, ["a"], des, 0.05)
    sig = pool.set_index("a").loc["sigmoid"]
    ref = random_effects([0.01, 0.02, 0.015], [0.01, 0.012, 0.011])
    assert sig["k"] == 3 and sig["estimate"] == pytest.approx(ref["estimate"])
    assert sig["splits_80"] == splits_for_power(ref["estimate"], 0.02, 813, 232, 0.05)
    assert (pool["p_holm"] >= pool["p"]).all()
    p = SimpleNamespace(stats=SimpleNamespace(alpha=0.05), features=SimpleNamespace(pretrained=True))
    (tmp_path / "f").mkdir()
    pooled_outputs(p, tests, "a", ["dataset", "backbone"], des, tmp_path, tmp_path / "f", "tx", "TX")
    assert (tmp_path / "tx_pooled.csv").is_file() and (tmp_path / "f" / "tx_forest.png").stat().st_size > 1000
    assert (tmp_path / "f" / "tx_power.png").stat().st_size > 1000
    from nriqa_lib.analysis.common import power_curves
    cur = power_curves(pool, "a", 0.05)
    s10 = cur[(cur["a"] == "sigmoid") & (cur["n_splits"] == 10)].iloc[0]
    assert s10["used"] and s10["power"] == pytest.approx(_nb_power(sig["estimate"], 0.02, 10, 813, 232, 0.05), abs=1e-6)


def test_nadeau_bengio_rows_carry_a_ci_that_agrees_with_their_p():
    from nriqa_lib.analysis.common import Design, compare
    rng = np.random.default_rng(0)
    rows = []
    for split in range(10):
        base = 0.6 + rng.normal(0, 0.02)
        for head, shift in (("B", 0.0), ("sigmoid", 0.03), ("gelu", 0.001)):
            rows.append(("clive", "l0", head, split, "srcc", base + shift + rng.normal(0, 0.01)))
    rows = pd.DataFrame(rows, columns=["dataset", "backbone", "head", "split", "metric", "value"])
    t = compare(rows, pd.DataFrame(), ["dataset", "backbone"], "head", "B", {"clive": Design("splits", 813, 232)},
                ["a"])
    for r in t.itertuples():
        assert (r.ci_low > 0 or r.ci_high < 0) == (r.p < 0.05)
        assert r.se == pytest.approx(r.sd_diff * np.sqrt(1 / 10 + 232 / 813))


@needs_shared
def test_clive_splits_beyond_the_published_ten_are_ours_and_labelled():
    from conftest import CLIVE_ROOT
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.data.splits import make_splits
    df = load_dataset("clive", {"clive": str(CLIVE_ROOT)}, decode=False).table
    sp = make_splits(df, "clive_liqe", n_splits=12, ratios=(0.7, 0.1, 0.2), seed=5,
                     liqe_folder=LABELS / "clive_liqe_splits")
    seeds = sp.groupby("split")["seed"].first()
    assert list(seeds.index) == list(range(12)) and (seeds[:10] == -1).all() and (seeds[10:] >= 0).all()
    assert (sp[sp["split"] >= 10].groupby(["split", "part"]).size().unstack()["train"] > 780).all()
    three = make_splits(df, "clive_liqe", n_splits=3, liqe_folder=LABELS / "clive_liqe_splits")
    assert three["split"].nunique() == 3


def test_t5_policies_views_and_native_size():
    import torch
    from PIL import Image

    from nriqa_lib.backbones import Preprocess, create_backbone
    from nriqa_lib.features import build_transform
    from nriqa_lib.stages.resolution import policy_spec
    from nriqa_lib.zeroshot import make_views
    pp = Preprocess(224, (0.5,) * 3, (0.5,) * 3)
    im = Image.fromarray((np.random.default_rng(0).random((300, 500, 3)) * 255).astype(np.uint8))
    native = build_transform(pp, "native")(im)
    assert native.shape == (3, 300, 500)
    grid = build_transform(pp, "grid")(im)
    assert grid.shape == (1 * 3 + 1, 3, 224, 224)                 # 1 x 3 windows at stride 128 + the global view
    torch.testing.assert_close(grid, make_views(native))            # MA-CLIP's own view function
    assert policy_spec("squash_384") == (384, "squash", False) and policy_spec("native") == (None, "native", True)
    vit = create_backbone("dinov2_vitb14", pretrained=False, dynamic_size=True)
    with torch.inference_mode():
        assert vit(torch.zeros(1, 3, 98, 140)).shape == (1, 768)     # any size: position embeddings interpolated
    with pytest.raises(ValueError, match="native-size input needs a timm model"):
        create_backbone("clip_rn50", pretrained=False, dynamic_size=True)


def test_cells_sharing_splits_are_pooled_with_their_correlation():
    """Two cells whose per-split differences are identical (same splits, correlation 1) carry one cell's
    information: the pooled se is that cell's se, not se / sqrt(2); independent cells give se / sqrt(2)."""
    from nriqa_lib.analysis.common import Design, compare, pooled
    r = random_effects([0.05, 0.05], [0.02, 0.02], corr=np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert r["se"] == pytest.approx(0.02)
    assert random_effects([0.05, 0.05], [0.02, 0.02])["se"] == pytest.approx(0.02 / np.sqrt(2))
    rng = np.random.default_rng(1)
    rows = []
    for split in range(10):
        base, d = 0.6 + rng.normal(0, 0.02), 0.02 + rng.normal(0, 0.02)
        for bb in ("l0", "l1"):                       # the same per-split difference on both backbones
            rows += [("clive", bb, "B", split, "srcc", base), ("clive", bb, "sigmoid", split, "srcc", base + d)]
    rows = pd.DataFrame(rows, columns=["dataset", "backbone", "head", "split", "metric", "value"])
    des = {"clive": Design("splits", 813, 232)}
    t = compare(rows, pd.DataFrame(), ["dataset", "backbone"], "head", "B", des, ["a"])
    pool = pooled(t.assign(x=1), ["a"], des).iloc[0]              # attrs survive assign
    assert pool["se"] == pytest.approx(t["se"].iloc[0]) and pool["k"] == 2
