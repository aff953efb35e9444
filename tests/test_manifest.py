import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CLIVE_ROOT, LABELS, REPO, make_image_dataset, needs_shared, write_manifest
from nriqa_lib.data.manifest import ManifestError, load_dataset, read_manifest, resolve_root, sha256_file

EXPECTED = {"clive": 1162, "koniq10k": 10073, "kadid10k": 10125, "spaq": 11125, "agiqa3k": 2982, "agiqa1k": 1080,
            "csiq": 866, "tid2013": 3000, "live": 779}


@pytest.mark.parametrize("name,rows", EXPECTED.items())
def test_committed_manifest_rows_and_card(name, rows):
    df = read_manifest(REPO / "data_manifests" / f"{name}.csv")
    card = yaml.safe_load((REPO / "data_manifests" / f"{name}.yaml").read_text())
    assert len(df) == rows == card["rows"]
    assert {"image", "mos", "mos_raw", "group"} <= set(df.columns)
    assert df["mos"].between(-0.15, 1.05).all()          # normalised (LIVE DMOS slightly exceeds 0-100)
    assert card["original_scale"]["direction"] in ("higher is better", "lower is better (DMOS)")
    assert len(card["label_sha256"]) == 64


def test_groups_and_official_split():
    kadid = read_manifest(REPO / "data_manifests" / "kadid10k.csv")
    assert kadid["group"].nunique() == 81
    koniq = read_manifest(REPO / "data_manifests" / "koniq10k.csv")
    assert koniq["set"].value_counts().to_dict() == {"train": 7058, "val": 1000, "test": 2015}
    # DMOS datasets are flipped to higher-is-better
    live = read_manifest(REPO / "data_manifests" / "live.csv")
    assert np.corrcoef(live["mos"], live["mos_raw"])[0, 1] < -0.99


@needs_shared
def test_manifests_rebuild_byte_identical(tmp_path):
    from nriqa_lib.data.build_manifests import main
    main(["--labels", str(LABELS), "--clive", str(CLIVE_ROOT), "--out", str(tmp_path)])
    for name in EXPECTED:
        for ext in ("csv", "yaml"):
            assert (tmp_path / f"{name}.{ext}").read_bytes() == (REPO / "data_manifests" / f"{name}.{ext}").read_bytes()
    card = yaml.safe_load((tmp_path / "kadid10k.yaml").read_text())
    assert card["label_sha256"] == sha256_file(LABELS / "icbcbicc_KADID-10k.csv")


@needs_shared
def test_clive_files_exist_and_match_sha256():
    m = load_dataset("clive", {"clive": str(CLIVE_ROOT)}, decode=False)   # checks existence + every sha256
    assert len(m.table) == 1162 and m.table["sha256"].str.len().eq(64).all()
    assert not m.table["image"].str.contains("trainingImages").any()
    assert m.table["mos_raw"].min() == pytest.approx(3.42, abs=0.01)


def _bad(tmp_path, mutate):
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6)
    df = mutate(df, root)
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    return mdir, root


@pytest.mark.parametrize("case,pattern", [
    ("missing", r"row 4 \(images/img_002.png\): file missing"),
    ("corrupt", r"row 3 \(images/img_001.png\): (sha256 mismatch|unreadable or corrupt)"),
    ("corrupt_nosha", r"row 3 \(images/img_001.png\): unreadable or corrupt image"),
    ("nan", r"row 5 \(images/img_003.png\): MOS nan is not a finite number"),
    ("text", r"row 2 \(images/img_000.png\): MOS 'good' is not a finite number"),
    ("duplicate", r"row 8: duplicate image 'images/img_000.png' \(first at row 2\)"),
    ("sha", r"row 6 \(images/img_004.png\): sha256 mismatch"),
])
def test_bad_manifests_fail_with_the_row(tmp_path, case, pattern):
    def mutate(df, root):
        if case == "missing":
            (root / df["image"][2]).unlink()
        elif case in ("corrupt", "corrupt_nosha"):
            (root / df["image"][1]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
            if case == "corrupt_nosha":
                df = df.drop(columns="sha256")
        elif case == "nan":
            df.loc[3, "mos"] = np.nan
        elif case == "text":
            df["mos"] = df["mos"].astype(object)
            df.loc[0, "mos"] = "good"
        elif case == "duplicate":
            df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
        elif case == "sha":
            df.loc[4, "sha256"] = "0" * 64
        return df
    mdir, root = _bad(tmp_path, mutate)
    with pytest.raises(ManifestError, match=pattern) as e:
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)
    assert "\n" not in str(e.value)


def test_unknown_dataset_and_roots(tmp_path, monkeypatch):
    with pytest.raises(ManifestError, match="unknown dataset 'clivee'.*known: agiqa1k"):
        load_dataset("clivee", {})
    with pytest.raises(ManifestError, match="no data root for dataset 'kadid10k'.*NRIQA_ROOT_KADID10K"):
        resolve_root("kadid10k", {})
    with pytest.raises(ManifestError, match=r"data.roots.kadid10k=/nope.*not a directory"):
        resolve_root("kadid10k", {"kadid10k": "/nope"})
    monkeypatch.setenv("NRIQA_ROOT_KADID10K", str(tmp_path))
    assert resolve_root("kadid10k", {"kadid10k": "/nope"}) == tmp_path
