"""Issue 13: pooled verdicts (random effects), power in splits, forest plots, splits beyond the published 10."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import needs_shared, LABELS
from nriqa_lib.analysis.stats import random_effects, splits_for_power


def test_random_effects_equals_statsmodels_dersimonian_laird_hartung_knapp():
    from statsmodels.stats.meta_analysis import combine_effects
    y, se = np.array([0.1, 0.5, -0.2, 0.3]), np.array([0.1, 0.14, 0.12, 0.2])
    r = random_effects(y, se)
    sm = combine_effects(y, se ** 2, method_re="dl", use_t=True)
    assert r["tau2"] == pytest.approx(sm.tau2) and r["tau2"] > 0
    assert r["estimate"] == pytest.approx(sm.mean_effect_re)
    assert r["se_dl"] == pytest.approx(sm.sd_eff_w_re)
    assert r["se"] == pytest.approx(sm.sd_eff_w_re_hksj)
    row = sm.summary_frame().loc["random effect wls"]            # HKSJ with a t(k - 1) interval
    assert r["ci_low"] == pytest.approx(row["ci_low"]) and r["ci_high"] == pytest.approx(row["ci_upp"])
    assert r["q"] == pytest.approx(sm.q) and r["i2"] == pytest.approx(sm.i2)
    assert r["p"] == pytest.approx(2 * stats.t.sf(abs(r["estimate"] / r["se"]), 3))


def test_random_effects_without_heterogeneity_and_with_one_cell():
    """Q < k - 1: tau^2 truncated at 0 (DerSimonian & Laird), so the estimate is the inverse-variance mean; by
    hand: w = 100, 50, 66.7. One cell: itself, no heterogeneity (I^2 and tau^2 undefined, not 100%)."""
    y, se = np.array([0.1, 0.05, 0.2]), np.sqrt([0.01, 0.02, 0.015])
    r = random_effects(y, se)
    w = 1 / se ** 2
    assert r["tau2"] == 0 and r["i2"] == 0
    assert r["estimate"] == pytest.approx((w * y).sum() / w.sum())
    assert r["se_dl"] == pytest.approx(np.sqrt(1 / w.sum()))
    one = random_effects([0.2], [0.1])
    assert one["estimate"] == pytest.approx(0.2) and one["ci_low"] == pytest.approx(0.2 - 1.959964 * 0.1, abs=1e-6)
    assert np.isnan(one["i2"]) and np.isnan(one["tau2"])


def test_pool_datasets_is_a_one_sample_t_over_datasets():
    from nriqa_lib.analysis.stats import pool_datasets
    y, se = np.array([0.03, 0.01, 0.05]), np.array([0.01, 0.02, 0.015])
    r = pool_datasets(y, se)
    ref = stats.ttest_1samp(y, 0)
    assert r["estimate"] == pytest.approx(y.mean()) and r["p"] == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval()
    assert r["ci_low"] == pytest.approx(lo) and r["ci_high"] == pytest.approx(hi)
    assert r["tau2"] == pytest.approx(random_effects(y, se)["tau2"])


# Null simulations (issue 21): the split design the Nadeau-Bengio correction assumes, J = 10 overlapping splits
# with n_test/n_train = 233/813: per-split differences share a component of correlation r = n_test/(n_train+n_test)
# across splits; k cells of one dataset are equicorrelated (rho) with each other.
NTR, NTE, J = 813, 233, 10


def _null_cells(g, n, k, rho, scale=None):
    r = NTE / (NTR + NTE)
    L = np.linalg.cholesky(np.full((k, k), rho) + (1 - rho) * np.eye(k))
    u = g.normal(size=(n, k, 1))
    e = g.normal(size=(n, k, J))
    u, e = np.einsum("ij,njs->nis", L, u), np.einsum("ij,njs->nis", L, e)
    s = 0.02 if scale is None else scale[..., None]
    return s * (np.sqrt(r) * u + np.sqrt(1 - r) * e)


@pytest.mark.parametrize("k", [1, 2, 4, 6])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_pooled_test_within_a_dataset_holds_its_level(k, rho):
    """k correlated cells on one dataset's splits, true difference 0: the test the pooled row reports rejects
    4-6% at 5% (20000 simulations; binomial se 0.15%). The former normal z with an estimated R: 8.3-11%."""
    from nriqa_lib.analysis.stats import split_cells_test
    g = np.random.default_rng(1000 * k + int(10 * rho))
    p = split_cells_test(_null_cells(g, 20000, k, rho), NTR, NTE)["p"]
    assert 0.04 <= (p < 0.05).mean() <= 0.06


@pytest.mark.parametrize("kd", [2, 3, 4, 6])
def test_pooled_test_across_datasets_holds_its_level(kd):
    """kd independent datasets (standard errors differing up to 4x, each estimated from J = 10 splits, 2 cells
    each), no true difference: the pooled one-sample t over datasets rejects 3.5-6% at 5% (10000 simulations).
    Inverse-variance weights with Hartung-Knapp rejected 5.9-6.6% at kd = 3-6 in the same design (measured)."""
    from nriqa_lib.analysis.stats import pool_datasets, split_cells_test
    g = np.random.default_rng(kd)
    n = 10000
    d = np.stack([_null_cells(g, n, 2, 0.5, np.repeat(g.uniform(0.005, 0.02, size=(n, 1)), 2, axis=1))
                  for _ in range(kd)], axis=1)                  # (n, kd, 2 cells, J): datasets independent
    cells = split_cells_test(d, NTR, NTE)                       # (n, kd) dataset-level tests
    p = np.array([pool_datasets(e, s)["p"] for e, s in zip(cells["estimate"], cells["se"])])
    assert 0.035 <= (p < 0.05).mean() <= 0.06


def test_pooled_bootstrap_cells_hold_their_level():
    """Three zero-shot cells on one dataset share the images and the random control (T4's design), no true
    difference: the averaged-replicate test rejects about 5% (300 simulations, n_boot 200: binomial se 1.3%,
    so 2-9% is asserted; 500 simulations at n_boot 300 measured 4.4%)."""
    from nriqa_lib.core.metrics import srcc_along
    from nriqa_lib.analysis.stats import bootstrap_cells_test, paired_bootstrap
    g = np.random.default_rng(7)
    rej = []
    for _ in range(300):
        y = g.normal(size=80)
        c = y + 1.2 * g.normal(size=80)
        cells = [paired_bootstrap(y + 1.2 * g.normal(size=80), c, y, srcc_along, n_boot=200, seed=0, vectorized=True)
                 for _ in range(3)]
        rej.append(bootstrap_cells_test(np.stack([x["dist"] for x in cells]), [x["diff"] for x in cells])["p"] < 0.05)
    assert 0.02 <= np.mean(rej) <= 0.09


def test_split_cells_test_of_one_cell_is_that_cells_nadeau_bengio_test(rng):
    from nriqa_lib.analysis.stats import nadeau_bengio, split_cells_test
    a, b = rng.normal(0.6, 0.02, 10), rng.normal(0.59, 0.02, 10)
    one = split_cells_test((a - b)[None], NTR, NTE)
    ref = nadeau_bengio(a, b, NTR, NTE)
    assert one["p"] == pytest.approx(ref["p"], rel=1e-12) and one["t"] == pytest.approx(ref["t"], rel=1e-12)


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
    from nriqa_lib.analysis.stats import nb_power
    for J in (3, 10, 40):
        assert nb_power(0.04, 0.03, J, 813, 232, 0.05) == pytest.approx(_nb_power(0.04, 0.03, J, 813, 232, 0.05),
                                                                          abs=1e-6)


def _split_rows(rng, datasets=("clive",), backbones=("l0", "l1", "l2"), shifts=(("B", 0.0), ("sigmoid", 0.02),
                                                                               ("gelu", 0.0))):
    rows = []
    for ds in datasets:
        for split in range(10):
            base = 0.6 + rng.normal(0, 0.02)
            for bb in backbones:
                for head, shift in shifts:
                    rows.append((ds, bb, head, split, "srcc", base + shift + rng.normal(0, 0.01)))
    return pd.DataFrame(rows, columns=["dataset", "backbone", "head", "split", "metric", "value"])


def test_pooled_rows_and_forest(tmp_path):
    """The pooled row of a claim on one human-rated dataset is the Nadeau-Bengio test of the cells' mean
    per-split difference (by hand), k = 1 with no heterogeneity; the synthetic set gets a row of its own, never
    pooled with CLIVE; splits_80/mde80 use that dataset's sizes at alpha/m of the row's Holm family."""
    from nriqa_lib.analysis.compare import compare
    from nriqa_lib.analysis.design import Design
    from nriqa_lib.analysis.inputs import TableInputs
    from nriqa_lib.analysis.pooled import pooled, pooled_outputs
    from nriqa_lib.analysis.result import Result
    from nriqa_lib.reporting.export import write_result
    from nriqa_lib.core.config import Stats
    from nriqa_lib.analysis.stats import mde_nadeau_bengio, nadeau_bengio
    rows = _split_rows(np.random.default_rng(0), datasets=("clive", "synthetic"))
    des = {"clive": Design("splits", 813, 232), "synthetic": Design("splits", 130, 52)}
    tests = compare(rows, pd.DataFrame(), ["dataset", "backbone"], "head", "B", des, ["a"])
    pool = pooled(tests, ["a"], des, 0.05)
    assert len(pool) == 4 and set(pool["scope"].str[:9]) == {"human-rat", "synthetic"}
    sig = pool[(pool["a"] == "sigmoid") & (pool["scope"] == "human-rated")].iloc[0]
    w = rows[rows["dataset"] == "clive"].pivot_table(index=["split", "backbone"], columns="head", values="value")
    dbar = (w["sigmoid"] - w["B"]).groupby("split").mean()
    ref = nadeau_bengio(dbar.to_numpy(), np.zeros(10), 813, 232)
    assert sig["k"] == 1 and sig["cells"] == 3 and sig["datasets"] == "clive"
    assert sig["estimate"] == pytest.approx(dbar.mean()) and sig["p"] == pytest.approx(ref["p"])
    assert np.isnan(sig["i2"]) and sig["m_family"] == 2
    assert sig["splits_80"] == splits_for_power(sig["estimate"], dbar.std(ddof=1), 813, 232, 0.05 / 2)
    assert sig["mde80"] == pytest.approx(mde_nadeau_bengio(dbar.std(ddof=1), 10, 813, 232, 0.05 / 2))
    assert (pool["p_holm"] >= pool["p"]).all()
    run = TableInputs(datasets=["clive", "synthetic"], backbones=[], stats=Stats(alpha=0.05))
    res = Result()
    pooled_outputs(res, run, tests, "a", ["dataset", "backbone"], des, "tx", "TX")
    assert [(kind, name) for kind, name, *_ in res.files] == [("table", "tx_pooled"), ("figure", "tx_forest"),
                                                             ("figure", "tx_power")]
    assert not list(tmp_path.iterdir())                     # computing wrote nothing
    write_result(tmp_path, res)
    t, f = tmp_path / "tables", tmp_path / "figures"
    assert (t / "tx_pooled.csv").is_file() and (f / "tx_forest.png").stat().st_size > 1000
    assert (f / "tx_power.png").stat().st_size > 1000
    from nriqa_lib.analysis.pooled import power_curves
    cur = power_curves(pool, "a", 0.05)
    assert set(cur["dataset"]) == {"clive", "synthetic"}                 # one curve per claim and dataset
    s10 = cur[(cur["a"] == "sigmoid") & (cur["dataset"] == "clive") & (cur["n_splits"] == 10)].iloc[0]
    assert s10["used"] and s10["power"] == pytest.approx(
        _nb_power(sig["estimate"], dbar.std(ddof=1), 10, 813, 232, 0.05 / 2), abs=1e-6)


def test_pooled_over_two_human_datasets_and_one_cell_equals_the_cell():
    from nriqa_lib.analysis.compare import compare
    from nriqa_lib.analysis.design import Design
    from nriqa_lib.analysis.pooled import pooled
    rows = _split_rows(np.random.default_rng(3), datasets=("clive", "koniq10k"), backbones=("l0",))
    des = {"clive": Design("splits", 813, 232), "koniq10k": Design("splits", 7058, 2015)}
    tests = compare(rows, pd.DataFrame(), ["dataset", "backbone"], "head", "B", des, ["a"])
    pool = pooled(tests, ["a"], des).set_index("a")
    cells = tests[tests["a"] == "sigmoid"]
    assert pool.loc["sigmoid", "k"] == 2
    assert pool.loc["sigmoid", "p"] == pytest.approx(stats.ttest_1samp(cells["diff"], 0).pvalue)
    one = pooled(tests[tests["dataset"] == "clive"], ["a"], des).set_index("a")
    c = tests[(tests["dataset"] == "clive")].set_index("a")
    for col, ccol in (("estimate", "diff"), ("p", "p"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("se", "se")):
        assert one.loc["sigmoid", col] == pytest.approx(c.loc["sigmoid", ccol], rel=1e-12)


def test_bootstrap_cells_sharing_resamples_are_pooled_with_their_correlation(rng):
    """Cells that share images: averaging their replicates keeps the correlation. Identical cells pool to that
    cell's se (not se / sqrt(2)); the pooled se of correlated cells lies between the independent value and the
    mean se."""
    from nriqa_lib.core.metrics import srcc_along
    from nriqa_lib.analysis.stats import bootstrap_cells_test, paired_bootstrap
    y = rng.normal(size=200)
    c = y + rng.normal(size=200)
    a1 = y + rng.normal(size=200)
    one = paired_bootstrap(a1, c, y, srcc_along, n_boot=400, seed=0, vectorized=True)
    same = bootstrap_cells_test(np.stack([one["dist"], one["dist"]]), [one["diff"]] * 2)
    assert same["se"] == pytest.approx(one["se"], rel=1e-9)
    cells = [one] + [paired_bootstrap(y + rng.normal(size=200), c, y, srcc_along, n_boot=400, seed=0,
                                      vectorized=True) for _ in range(3)]
    D = np.stack([x["dist"] for x in cells])
    r = bootstrap_cells_test(D, [x["diff"] for x in cells])
    ses = np.array([x["se"] for x in cells])
    assert np.sqrt((ses ** 2).sum()) / 4 < r["se"] < ses.mean()
    assert np.corrcoef(D).min() > 0.1                         # the shared control and images correlate them


def test_a_bootstrap_p_below_its_resolution_is_a_bound():
    from nriqa_lib.analysis.stats import bootstrap_p
    assert bootstrap_p(np.full(500, 0.1)) == (1 / 500, True)
    assert bootstrap_p(np.r_[np.full(490, 0.1), np.full(10, -0.1)]) == (0.04, False)
    from nriqa_lib.reporting.display import formatted
    f = formatted(pd.DataFrame({"p": [0.002, 0.3], "p_below": [True, False], "i2": [np.nan, 0.2], "k": [1, 2],
                                "mde80": [np.nan, 0.05], "mde80_beyond_range": [True, False]}))
    assert f["p"].tolist() == ["< 0.002", "0.3"] and "p_below" not in f
    assert f["i2"].tolist()[0] == "-" and f["k"].tolist() == [1, 2]
    assert f["mde80"].tolist() == ["not detectable with these splits", "0.050"] and "mde80_beyond_range" not in f
    ci = formatted(pd.DataFrame({"estimate": [0.1, 0.2], "ci_low": [-0.05, np.nan], "ci_high": [0.25, np.nan],
                                 "p": [0.2, np.nan]}))
    assert list(ci.columns) == ["estimate", "95% CI", "p"]          # one column for the interval, in its place
    assert ci["95% CI"].tolist() == ["[-0.050, 0.250]", ""]
    adj = formatted(pd.DataFrame({"p": [0.002, 0.002], "p_below": [True, False], "p_holm": [0.012, 0.012],
                                  "p_adj": [1.0, np.nan]}))
    assert adj["p_holm"].tolist() == ["<= 0.012", "0.012"] and adj["p_adj"].tolist() == ["1", ""]


def test_synthetic_cards_and_not_human_rated_agree():
    from pathlib import Path

    import yaml

    from nriqa_lib.core.paths import NOT_HUMAN_RATED
    mdir = Path(__file__).resolve().parents[2] / "data_manifests"
    synthetic = {f.stem for f in mdir.glob("*.yaml")
                 if "NOT HUMAN OPINIONS" in str((yaml.safe_load(f.read_text()) or {}).get("scores", "")).upper()}
    assert synthetic == set(NOT_HUMAN_RATED)


def test_nadeau_bengio_rows_carry_a_ci_that_agrees_with_their_p():
    from nriqa_lib.analysis.compare import compare
    from nriqa_lib.analysis.design import Design
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

    from nriqa_lib.backbones.models import create_backbone

    from nriqa_lib.backbones.registry import Preprocess
    from nriqa_lib.features.transforms import build_transform
    from nriqa_lib.training.resolution import policy_spec
    from nriqa_lib.features.views import make_views
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


def test_cells_sharing_splits_are_pooled_without_an_estimated_correlation():
    """Two cells whose per-split differences are identical carry one cell's information: the dataset's test is
    that cell's test (se and p), not a test with se / sqrt(2)."""
    from nriqa_lib.analysis.compare import compare
    from nriqa_lib.analysis.design import Design
    from nriqa_lib.analysis.pooled import pooled
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
    assert pool["se"] == pytest.approx(t["se"].iloc[0]) and pool["p"] == pytest.approx(t["p"].iloc[0])
    assert pool["k"] == 1 and pool["cells"] == 2
