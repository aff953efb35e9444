"""nriqa_lib.analysis: the comparison helper (designs, Holm families), summaries and exports, T3's best-fixed choice."""
import json

import numpy as np
import pandas as pd
import pytest

from nriqa_lib.analysis.compare import compare, split_metrics, summarize_groups, summary_table
from nriqa_lib.analysis.design import Design
from nriqa_lib.analysis.format import format_pm
from nriqa_lib.reporting.export import export_table, write_metrics_json
from nriqa_lib.analysis.stats import compare_paired, holm


def _rows(seed=0):
    g = np.random.default_rng(seed)
    rows = []
    for d in ("a", "b"):
        for head, shift in (("B", 0.0), ("sig", 0.05), ("tanh", -0.01)):
            for k in range(10):
                rows.append((d, head, k, "srcc", 0.6 + shift + 0.02 * g.normal()))
    return pd.DataFrame(rows, columns=["dataset", "head", "split", "metric", "value"])


def test_compare_splits_design_matches_compare_paired_and_holm_within_family():
    rows = _rows()
    des = {"a": Design("splits", 80, 20), "b": Design("splits", 80, 20)}
    t = compare(rows, None, ["dataset"], "head", "B", des, family=["a"])
    assert len(t) == 4 and set(t["b"]) == {"B"}
    wide = rows.query("dataset == 'a'").pivot_table(index="split", columns="head", values="value")
    want = compare_paired(wide["sig"].to_numpy(), wide["B"].to_numpy(), 80, 20)
    got = t.query("dataset == 'a' and a == 'sig'").iloc[0]
    assert got["p"] == pytest.approx(want["p_nb"]) and got["diff"] == pytest.approx(want["diff"])
    for head, g in t.groupby("a"):                      # the family: one head vs B over the datasets
        assert len(g) == 2 and (g["m_family"] == 2).all()
        assert np.allclose(g["p_holm"], holm(g["p"])[1]) and np.allclose(g["p_wilcoxon_holm"], holm(g["p_wilcoxon"])[1])
    assert (t["min_p_wilcoxon"] == 2 / 2 ** 10).all() and t["wilcoxon_can_reject"].all()   # 0.00195 < 0.05/2
    from nriqa_lib.analysis.stats import mde_nadeau_bengio
    assert got["mde80"] == pytest.approx(mde_nadeau_bengio(got["sd_diff"], 10, 80, 20, 0.05 / 2))
    allpairs = compare(rows, None, ["dataset"], "head", None, des, family=["dataset"])
    assert len(allpairs) == 6 and (allpairs["m_family"] == 3).all()


def test_compare_shared_design_uses_the_two_level_bootstrap():
    g = np.random.default_rng(4)
    y = g.random(120)
    pred = []
    for head, noise in (("B", 0.3), ("sig", 0.2)):
        for k in range(5):
            pred.append(pd.DataFrame({"dataset": "k", "head": head, "split": k, "part": "test",
                                      "image": [f"i{i}" for i in range(120)], "mos": y,
                                      "pred": y + noise * g.normal(size=120)}))
    pred = pd.concat(pred, ignore_index=True)
    rows = split_metrics(pred, ["dataset", "head"])
    des = {"k": Design("shared", what="training seeds")}
    t = compare(rows, pred, ["dataset"], "head", "B", des, family=["a"], n_boot=300)
    from nriqa_lib.analysis.compare import prediction_matrix
    from nriqa_lib.analysis.stats import two_level_bootstrap
    A, m = prediction_matrix(pred[pred["head"] == "sig"])
    B, _ = prediction_matrix(pred[pred["head"] == "B"])
    want = two_level_bootstrap(A, m, B, n_boot=300)
    assert t.iloc[0]["p"] == want["p"] and t.iloc[0]["diff"] == pytest.approx(want["value"])
    assert np.isnan(t.iloc[0]["min_p_wilcoxon"]) and t.iloc[0]["mde80"] > 0
    summ = summarize_groups(rows, pred, ["dataset", "head"], des, n_boot=300)
    s = summ.query("head == 'sig' and metric == 'srcc'").iloc[0]
    one = two_level_bootstrap(A, m, n_boot=300)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((one["ci_low"], one["ci_high"]))
    assert s["sd"] > 0 and "two-level" in s["ci_kind"]                 # no more '± 0.000'


def test_split_metrics_summary_and_export(tmp_path):
    g = np.random.default_rng(1)
    pred = pd.DataFrame({"backbone": "x", "split": np.repeat([0, 1, 2], 30), "part": "test",
                         "mos": g.random(90)})
    pred["pred"] = pred["mos"] + 0.1 * g.normal(size=90)
    rows = split_metrics(pred, ["backbone"])
    assert set(rows["metric"]) == {"srcc", "krcc", "plcc", "rmse"}
    from scipy.stats import spearmanr
    s0 = pred.query("split == 0")
    assert rows.query("split == 0 and metric == 'srcc'")["value"].item() == pytest.approx(spearmanr(s0.pred, s0.mos)[0])
    summ = summary_table(rows, ["backbone"])
    vals = rows.query("metric == 'srcc'")["value"]
    assert summ.query("metric == 'srcc'")["mean"].item() == pytest.approx(vals.mean())
    table = format_pm(summ, ["backbone"], ["metric"])
    paths = export_table(table, tmp_path, "t", "caption")
    assert "±" in paths["md"].read_text() and "caption" in paths["md"].read_text()
    assert "\\begin{tabular}" in paths["tex"].read_text()
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == ["backbone", "plcc", "srcc"]
    write_metrics_json(tmp_path / "m.json", {"x": {"srcc": np.float64(0.123456789)}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": {"srcc": 0.123457}}


def test_intervals_and_mdes_stay_inside_the_range_of_their_statistic(tmp_path):
    """3 splits of a noisy cell: the t-interval of a mean SRCC passes [-1, 1], a difference's passes [-2, 2] and its
    MDE passes 2 (all computed here from scipy); the tables show them inside, and the MDE as not detectable."""
    from scipy import stats as st

    from nriqa_lib.analysis.pooled import pooled
    vals = {"B": [0.9, -0.6, 0.95], "sig": [-0.9, 0.8, -0.7]}
    rows = pd.DataFrame([("clive", h, k, "srcc", v) for h, vs in vals.items() for k, v in enumerate(vs)],
                        columns=["dataset", "head", "split", "metric", "value"])
    des = {"clive": Design("splits", 40, 10)}
    t_hi = np.mean(vals["B"]) + st.t.ppf(0.975, 2) * np.std(vals["B"], ddof=1) * np.sqrt(1 / 3 + 10 / 40)
    assert t_hi > 1                                               # the raw interval is impossible
    s = summarize_groups(rows, None, ["dataset", "head"], des, metrics=("srcc",))
    assert (s["ci_high"] <= 1).all() and (s["ci_low"] >= -1).all() and s["ci_high"].max() == 1.0
    t = compare(rows, None, ["dataset"], "head", "B", des, family=["a"])
    d = np.subtract(vals["sig"], vals["B"])
    raw_lo = d.mean() - st.t.ppf(0.975, 2) * d.std(ddof=1) * np.sqrt(1 / 3 + 10 / 40)
    assert raw_lo < -2 and t.iloc[0]["ci_low"] == -2.0            # clipped at the smallest possible difference
    assert np.isnan(t.iloc[0]["mde80"]) and bool(t.iloc[0]["mde80_beyond_range"])
    pool = pooled(t, ["a"], des)
    assert pool.iloc[0]["ci_low"] == -2.0 and bool(pool.iloc[0]["mde80_beyond_range"])
    paths = export_table(t, tmp_path, "t")
    md = paths["md"].read_text()
    assert "not detectable with these splits" in md and "mde80_beyond_range" not in md
    assert pd.read_csv(paths["csv"])["mde80_beyond_range"].tolist() == [True]


def test_t3_best_fixed_is_chosen_on_val_not_test():
    from nriqa_lib.tables.t3 import best_fixed
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


def test_t6_epoch_curves_and_how_much_best_on_test_flatters():
    """Issue 35 item 4: T6's per-epoch curve is the mean (sd, n) over splits of each epoch's test SRCC, an undefined
    SRCC (null in run.json) left out of its epoch's n; the flattery table is, per split, the best epoch's test SRCC
    (P1's best-on-test) minus the last epoch's, averaged; hand-computed."""
    import pandas as pd
    from nriqa_lib.tables.t6 import _flattery, epoch_table
    h = pd.DataFrame({"dataset": "clive", "backbone": "b", "head": "B", "regime": "p1_frozen",
                      "split": [0, 0, 0, 1, 1, 1], "epoch": [0, 1, 2, 0, 1, 2],
                      "test_srcc": [0.5, 0.7, 0.6, 0.4, np.nan, 0.8]})
    c = epoch_table(h)
    assert c["epoch"].tolist() == [0, 1, 2] and c["n"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(c["mean"], [0.45, 0.7, 0.7])
    np.testing.assert_allclose(c["sd"].iloc[[0, 2]], [np.std([0.5, 0.4], ddof=1), np.std([0.6, 0.8], ddof=1)])
    f = _flattery(h).iloc[0]
    # split 0: best 0.7, last 0.6 (gain 0.1); split 1: best 0.8 = last (gain 0)
    assert (f["best_on_test"], f["last_epoch"], f["gain"], f["gain_max"], f["splits"]) == (0.75, 0.7, 0.05, 0.1, 2)
