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
