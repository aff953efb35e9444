"""On real CLIVE (../shared): frozen tf_efficientnet_lite0 features + P1's B head over the 10 published splits,
against a ridge regression on the same features (closed form, alpha chosen on each split's val part)."""
import numpy as np
import pytest

from conftest import CLIVE_ROOT, LABELS, needs_shared
from nriqa_lib.backbones.models import create_backbone
from nriqa_lib.data.manifest import load_dataset
from nriqa_lib.data.splits import make_splits
from nriqa_lib.extraction.extract import extract_features
from nriqa_lib.core.metrics import srcc
from nriqa_lib.training.protocol import jobs_from_splits
from nriqa_lib.training.trainer import TrainConfig, train_heads


def _ridge_test_srcc(X, y, job):
    tr = job.train_idx
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
    Z = (X - mu) / sd
    best = (-np.inf, None)
    for a in 10.0 ** np.arange(-1, 5):
        w = np.linalg.solve(Z[tr].T @ Z[tr] + a * np.eye(Z.shape[1]), Z[tr].T @ (y[tr] - y[tr].mean()))
        v = srcc(Z[job.val_idx] @ w, y[job.val_idx])
        best = max(best, (v, w), key=lambda t: t[0])
    return srcc(Z[job.test_idx] @ best[1], y[job.test_idx])


@needs_shared
@pytest.mark.slow
def test_lite0_b_head_on_clive_published_splits(tmp_path_factory):
    m = load_dataset("clive", {"clive": str(CLIVE_ROOT)}, decode=False)
    bb = create_backbone("tf_efficientnet_lite0")
    fs = extract_features(bb, m, batch_size=8, cache_dir=tmp_path_factory.mktemp("feat"), progress=False)
    jobs = jobs_from_splits(fs.images, make_splits(m.table, "clive_liqe", liqe_folder=LABELS / "clive_liqe_splits"))
    y = m.table["mos"].to_numpy()
    res = train_heads(fs.features, y, jobs, TrainConfig(head="B", epochs=15, lr=1e-3, batch_size=64))
    te = res.predictions.query("part == 'test'")
    head = np.median([srcc(g.pred, g.mos) for _, g in te.groupby("job")])
    ridge = np.median([_ridge_test_srcc(fs.features.astype(np.float64), y, j) for j in jobs])
    print(f"CLIVE lite0: B head median test SRCC {head:.3f}, ridge {ridge:.3f}")
    assert 0.55 < ridge < 0.75
    assert head > 0.55 and head > ridge - 0.05
