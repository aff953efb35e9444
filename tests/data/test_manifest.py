
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CLIVE_ROOT, LABELS, REPO, make_image_dataset, needs_shared, write_manifest
from nriqa_lib.data.manifest import check_mos_range, ManifestError, load_dataset, read_manifest, resolve_root, sha256_file

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
    check_mos_range(df, card, name)                          # the published labels sit in the declared range


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
    ("absolute", r"row 3: image path '/etc/passwd' escapes the dataset root"),
    ("dotdot", r"row 4: image path '../outside.png' escapes the dataset root"),
    ("header_only", r"manifest has a header but no rows"),
    ("zero_bytes", r"empty manifest \(0 bytes\)"),
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
        elif case == "absolute":
            df.loc[1, "image"] = "/etc/passwd"
        elif case == "dotdot":
            df.loc[2, "image"] = "../outside.png"
        elif case == "header_only":
            df = df.iloc[:0]
        return df
    mdir, root = _bad(tmp_path, mutate)
    if case == "zero_bytes":
        (mdir / "toy.csv").write_bytes(b"")
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


def test_mos_outside_the_cards_range_is_refused_with_the_row(tmp_path):
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6)
    df["mos_raw"] = df["mos"] * 100
    mdir = tmp_path / "manifests"
    card = ("dataset: toy\noriginal_scale:\n  nominal_range: [0, 100]\n  direction: higher is better\n"
            "  observed_range: [2.0, 98.0]\n")
    write_manifest(mdir, "toy", df)
    (mdir / "toy.yaml").write_text(card)
    load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)                     # in range: fine
    bad = df.copy()
    bad.loc[3, "mos_raw"] = 150.0
    write_manifest(mdir, "toy", bad)
    (mdir / "toy.yaml").write_text(card)
    with pytest.raises(ManifestError, match=r"row 5 \(images/img_003.png\): mos_raw 150 is outside the card's "
                                            r"declared range \[0, 100\]"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)
    bad = df.copy()
    bad.loc[0, "mos"] = 1.7
    write_manifest(mdir, "toy", bad)
    (mdir / "toy.yaml").write_text(card)
    with pytest.raises(ManifestError, match=r"row 2 .*mos 1.7 is outside"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)


def test_outputs_follow_the_umask(tmp_path):
    import os
    from nriqa_lib.core.io import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644          # mkstemp alone gives 0600
        os.umask(0o002)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_content_hash_follows_the_images_even_without_sha256(tmp_path, monkeypatch):
    """A manifest without sha256: other images under the same names give another content hash (cache key)."""
    import nriqa_lib.data.manifest as man
    root = tmp_path / "root"
    df = make_image_dataset(root, n=4).drop(columns="sha256")
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    cache = tmp_path / "sha"
    a = load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)
    calls = []
    real = man.sha256_file
    monkeypatch.setattr(man, "sha256_file", lambda p, *a: calls.append(p) or real(p))
    b = load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)
    assert calls == [] and a.content_hash == b.content_hash          # unchanged files: read from the sidecar
    make_image_dataset(root, n=4, seed=9)                              # same names, other pixels
    calls.clear()
    c = load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)
    assert len(calls) == 4 and c.content_hash != a.content_hash
    assert load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, decode=False).table.get("sha256") is None


def test_validation_decodes_each_unchanged_file_once(tmp_path, monkeypatch):
    """The sidecar remembers that a file decoded: a second validation opens no image; a file that changes
    (here: truncated) is decoded again and fails with its row."""
    import nriqa_lib.data.manifest as man
    root = tmp_path / "root"
    df = make_image_dataset(root, n=4)
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df.drop(columns="sha256"))
    cache = tmp_path / "sha"
    opened = []
    real = man.Image.open
    monkeypatch.setattr(man.Image, "open", lambda p, *a, **k: opened.append(p) or real(p, *a, **k))
    load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)
    assert len(opened) == 4
    opened.clear()
    load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)
    assert opened == []
    f = root / df["image"][2]
    f.write_bytes(f.read_bytes()[:60])
    with pytest.raises(ManifestError, match=r"row 4 \(images/img_002.png\): unreadable or corrupt image"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=cache)


def test_hash_command_records_sha256_in_the_manifest(tmp_path, monkeypatch):
    from nriqa_lib import cli
    root = tmp_path / "root"
    df = make_image_dataset(root, n=4)
    want = df["sha256"].tolist()
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df.drop(columns="sha256"))
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    monkeypatch.setenv("NRIQA_ROOT_TOY", str(root))
    assert cli.main(["--params", str(REPO / "params.yaml"), "hash", "--dataset", "toy"]) == 0
    assert read_manifest(mdir / "toy.csv")["sha256"].tolist() == want
    (root / df["image"][1]).write_bytes((root / df["image"][0]).read_bytes())      # swap in another image
    with pytest.raises(ManifestError, match=r"row 3 \(images/img_001.png\): sha256 mismatch"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)


def test_missing_image_in_a_limit_sample_names_the_manifest_line(tmp_path):
    """Issue 22 item 6: under data.limit the message names the image's line in the manifest file, not its row in
    the sample."""
    from nriqa_lib.data.manifest import sample_index
    root = tmp_path / "root"
    df = make_image_dataset(root, n=12)
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    keep = sample_index(12, 4, seed=3)
    victim = int(keep[-1])
    assert victim + 2 > 5                                         # the sample's last row is line 5 of the sample
    (root / df["image"][victim]).unlink()
    with pytest.raises(ManifestError, match=rf"row {victim + 2} \({df['image'][victim]}\): file missing"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, limit=4, limit_seed=3)
