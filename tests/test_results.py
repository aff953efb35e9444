import json

import numpy as np
import pandas as pd
import pytest

from nriqa_lib.results import export_table, format_pm, paired_tests, split_metrics, summary_table, write_metrics_json
from nriqa_lib.stats import compare_paired, holm


def _rows(seed=0):
    g = np.random.default_rng(seed)
    rows = []
    for d in ("a", "b"):
        for head, shift in (("B", 0.0), ("sig", 0.05), ("tanh", -0.01)):
            for k in range(10):
                rows.append((d, head, k, "srcc", 0.6 + shift + 0.02 * g.normal()))
    return pd.DataFrame(rows, columns=["dataset", "head", "split", "metric", "value"])


def test_paired_tests_match_compare_paired_and_holm():
    rows = _rows()
    t = paired_tests(rows, ["dataset"], "head", "B", n_train=80, n_test=20)
    assert len(t) == 4 and set(t["b"]) == {"B"}
    wide = rows.query("dataset == 'a'").pivot_table(index="split", columns="head", values="value")
    want = compare_paired(wide["sig"].to_numpy(), wide["B"].to_numpy(), 80, 20)
    got = t.query("dataset == 'a' and a == 'sig'").iloc[0]
    assert got["p_nb"] == pytest.approx(want["p_nb"]) and got["diff"] == pytest.approx(want["diff"])
    assert np.allclose(t["p_nb_holm"], holm(t["p_nb"])[1])
    allpairs = paired_tests(rows, ["dataset"], "head", None, 80, 20)
    assert len(allpairs) == 6


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
