"""Issue 39: a random-init control at several initialisations (features.control_inits) through the features and
zeroshot stages: one feature set per seed, each its own random weights, each scored by T4's magnitude cue."""
import shutil

import numpy as np
import pandas as pd

from conftest import BB, make_tree
from nriqa_lib.pipeline import registry as stages


def test_features_stage_extracts_each_control_init_and_zeroshot_scores_them(tmp_path, monkeypatch):
    from nriqa_lib.features.sets import load_feature_set
    _, p = make_tree(tmp_path, monkeypatch)
    ctrl = f"random_{BB}"
    p.data.datasets = ["toyb"]
    p.features.backbones = [ctrl]
    p.features.control_inits = 3
    p.features.image_size = 64
    p.features.batch_size = 16
    for f in ("", "_init1", "_init2"):          # the toy tree's made-up sets out of the way: the stage computes them
        shutil.rmtree(tmp_path / "features" / "toyb" / f"{ctrl}{f}")
    stages.stage("features").load().run(stages.view(p, "features"), "toyb")
    sets = [load_feature_set(tmp_path / "features" / "toyb" / f"{ctrl}{f}") for f in ("", "_init1", "_init2")]
    assert all(fs.images == sets[0].images for fs in sets)
    # three initialisations: three different feature matrices, each a seeded random model (its cache identity)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.allclose(sets[a].features, sets[b].features)
    stages.stage("zeroshot").load().run(stages.view(p, "zeroshot"), "toyb")
    sc = pd.read_csv(tmp_path / "results" / "zeroshot" / "toyb" / "scores.csv")
    assert set(sc["source"]) == {ctrl, f"{ctrl}_init1", f"{ctrl}_init2"}


def test_feature_set_names_round_trip():
    from nriqa_lib.backbones.registry import feature_sets, init_of
    ctrl = f"random_{BB}"
    sets = feature_sets([BB, ctrl], 3)
    assert sets == [(BB, BB, 0), (ctrl, ctrl, 0), (f"{ctrl}_init1", ctrl, 1), (f"{ctrl}_init2", ctrl, 2)]
    assert [init_of(name) for name, _, _ in sets] == [None, None, (ctrl, 1), (ctrl, 2)]
    assert init_of(f"{BB}_init1") is None and init_of(f"{ctrl}_initx") is None     # not a control / not a seed
