import numpy as np
import pandas as pd

from nriqa_lib.data.manifest import read_manifest, validate_manifest
from nriqa_lib.data.synthetic import LEVELS, generate

SRC = ("chelsea", "coffee")


def test_same_seed_byte_identical_and_valid(tmp_path):
    a = generate(tmp_path / "a", tmp_path / "a.csv", seed=0, sources=SRC)
    b = generate(tmp_path / "b", tmp_path / "b.csv", seed=0, sources=SRC)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    for rel in a["image"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert len(a) == len(SRC) * (1 + 5 * len(LEVELS))
    df = read_manifest(tmp_path / "a.csv")
    validate_manifest(df, tmp_path / "a")                  # sha256 + decoding
    c = generate(tmp_path / "c", tmp_path / "c.csv", seed=1, sources=SRC)
    noisy = a["dis_type"] == "gaussian_noise"
    assert not np.array_equal(a.loc[noisy, "sha256"], c.loc[noisy, "sha256"])
    assert a.loc[~noisy, "sha256"].tolist() == c.loc[~noisy, "sha256"].tolist()


def test_pseudo_mos_is_ssim_and_falls_with_level(tmp_path):
    df = generate(tmp_path / "s", tmp_path / "s.csv", seed=0, sources=SRC)
    assert (df.query("dis_type == 'pristine'")["mos_raw"] == 100).all()
    for (src, kind), g in df.query("dis_type != 'pristine'").groupby(["group", "dis_type"]):
        q = g.sort_values("level")["mos_raw"].to_numpy()
        assert q[0] > q[-1], (src, kind)                   # level 5 is worse than level 1
        assert np.all(np.diff(q) < 1.0), (src, kind)       # essentially monotone
    assert set(df["group"]) == set(SRC)                    # group = source photo
    assert df["mos"].equals((df["mos_raw"] / 100).round(10))


def test_stage_generates_nothing_when_the_set_is_not_used(tmp_path, monkeypatch):
    """Issue 22 item 9: the paper profile (no synthetic in data.datasets) gets the stage's outputs empty, at once;
    a stale image folder from an earlier default run is removed."""
    from nriqa_lib.core.config import Params
    from nriqa_lib.data.synthetic import COLUMNS
    from nriqa_lib.pipeline.registry import view
    from nriqa_lib.stages import synthetic
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data_manifests").mkdir()
    (tmp_path / "data" / "synthetic" / "images").mkdir(parents=True)
    (tmp_path / "data" / "synthetic" / "images" / "old.png").write_bytes(b"x")
    p = Params()
    p = p.model_copy(update={"data": p.data.model_copy(update={"datasets": ["clive"]})})
    synthetic.run(view(p, "synthetic"))
    assert (tmp_path / "data_manifests" / "synthetic.csv").read_text() == ",".join(COLUMNS) + "\n"
    assert list((tmp_path / "data" / "synthetic" / "images").iterdir()) == []
    df = generate(tmp_path / "g", tmp_path / "g.csv", seed=0, sources=SRC[:1])
    assert tuple(df.columns) == COLUMNS                       # the header-only manifest has the real columns
