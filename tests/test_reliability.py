"""Issue 23 (never a wrong number, round two): each case a user met, refused in one line or handled, where before it
ended with exit 0 and wrong numbers, a traceback or a hang. Every test here failed before the change it tests."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, make_image_dataset, params_file, write_manifest
from nriqa_lib import cli
from nriqa_lib.core.config import ConfigError
from nriqa_lib.core.params import load_params


def _params(tmp_path, mutate, text: str | None = None):
    f = params_file(tmp_path, mutate)
    if text is not None:
        f.write_text(text)
    return f


# items 1-3 and 6: every float finite, every numeric knob within a documented range, cross-field checks
@pytest.mark.parametrize("mutate,pattern", [
    (lambda r: r["train"].update(lr=float("inf")), r"train\.lr=inf is not a finite number"),
    (lambda r: r["train"].update(lr=float("nan")), r"train\.lr=nan is not a finite number"),
    (lambda r: r["t3"].update(temperature=float("nan")), r"t3\.temperature=nan is not a finite number"),
    (lambda r: r["train"].update(margin_scale=float("inf")), r"train\.margin_scale=inf is not a finite number"),
    (lambda r: r["t4"].update(lambdas=[0.5, float("nan")]), r"t4\.lambdas\[1\]=nan is not a finite number"),
    (lambda r: r["train"].update(hidden=10_000_000), r"train\.hidden=10000000 is out of range; allowed: in \[1, 65536\]"),
    (lambda r: r["train"].update(epochs=1_000_000_000), r"train\.epochs=1000000000 is out of range; allowed: in \[1, 10000\]"),
    (lambda r: r["train"].update(lr=50.0), r"train\.lr=50\.0 is out of range; allowed: in \(0, 10\]"),
    (lambda r: r["stats"].update(alpha=0.7), r"stats\.alpha=0\.7 is out of range"),
    (lambda r: r["stats"].update(n_boot=10 ** 9), r"stats\.n_boot=1000000000 is out of range; allowed: in \[100, 1000000\]"),
    (lambda r: r["features"].update(jpeg_draft=-1.0), r"features\.jpeg_draft=-1\.0 is out of range"),
    (lambda r: r["features"].update(image_size=100000), r"features\.image_size=100000 is out of range"),
    (lambda r: r["run"].update(workers=100000), r"run\.workers=100000 is out of range"),
    (lambda r: r["splits"].update(ratios=[0.8, 0.0, 0.2]),
     r"splits\.ratios=\[0\.8, 0\.0, 0\.2\] has no val part but train\.select_on=val"),
    (lambda r: r["train"].update(per_dataset={"cliv": {"epochs": 3}}),
     r"train\.per_dataset\.cliv: no such dataset in data\.roots"),
    (lambda r: r["data"].update(datasets=["clive", "clive"]), r"data\.datasets lists 'clive' twice"),
    (lambda r: r["run"].update(device="cuda:x"), r"run\.device='cuda:x'; use auto, cpu, cuda or cuda:N"),
])
def test_absurd_params_are_refused_in_one_line(tmp_path, mutate, pattern):
    f = _params(tmp_path, mutate)
    with pytest.raises(ConfigError, match=pattern) as e:
        load_params(f)
    assert "\n" not in str(e.value)


def test_empty_params_file_and_duplicate_keys_are_refused(tmp_path):
    """Item 15: a 0-byte params file is not 'the defaults', and a key given twice is not silently the last one."""
    f = tmp_path / "params.yaml"
    f.write_bytes(b"")
    with pytest.raises(ConfigError, match="params file .*params.yaml is empty"):
        load_params(f)
    text = (REPO / "params.yaml").read_text() + "\ntrain:\n  lr: 0.5\n"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"line \d+: duplicate key 'train'"):
        load_params(f)
    f.write_text("train:\n  lr: 0.001\n  lr: 0.5\n")
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'lr'"):
        load_params(f)


@pytest.mark.parametrize("value", ["caf\u00e9", "a#b", "it's", "~home", "x: y"])
def test_profile_overrides_quote_any_string_so_dvc_reads_it_back(tmp_path, value):
    """Item 15: strings with non-ASCII, '#', quotes, '~' or ': ' survive DVC's own override parser (Hydra) as the
    same string, in a top-level value and inside a mapping."""
    from dvc.utils.hydra import apply_overrides
    from nriqa_lib.pipeline.profiles import overrides
    base = tmp_path / "base.yaml"
    prof = tmp_path / "prof.yaml"
    base.write_text(yaml.safe_dump({"run": {"launcher": "python"}, "data": {"roots": {"clive": "a"}}}))
    want = {"run": {"launcher": value}, "data": {"roots": {"clive": value}}}
    prof.write_text(yaml.safe_dump(want, allow_unicode=True))
    f = tmp_path / "params.yaml"
    f.write_text(base.read_text())
    apply_overrides(str(f), overrides(base, prof))
    assert yaml.safe_load(f.read_text()) == want


def test_single_stage_run_needs_the_check_stamp(tmp_path, monkeypatch, capsys):
    """Item 16: under DVC (DVC_STAGE set) a stage other than check refuses to start when results/params.ok is
    missing (check failed or did not run), before any work."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "t1")
    assert cli.main(["--params", str(REPO / "params.yaml"), "notebook", "t1", "--out", "results/t1",
                     "--tag", "x"]) == 2
    err = capsys.readouterr().err
    assert "results/params.ok is missing" in err and "dvc repro check" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results" / "t1").exists()


def test_broken_or_list_card_yaml_is_one_line(tmp_path):
    """Item 9: a card that is not YAML, or YAML that is not a mapping, fails in one line naming the file."""
    from nriqa_lib.data.manifest import ManifestError, load_dataset
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6)
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    for text, pattern in (("dataset: [toy\n", r"toy\.yaml.*not valid YAML"), ("- a\n- b\n", r"toy\.yaml.*mapping")):
        (mdir / "toy.yaml").write_text(text)
        with pytest.raises(ManifestError, match=pattern) as e:
            load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)
        assert "\n" not in str(e.value)


def test_splits_without_a_val_part_are_refused_at_splits_with_the_sizes(tmp_path, monkeypatch, capsys):
    """Item 7: a sample too small for a val part fails at `splits` (with the sizes), not later in `heads`."""
    root = tmp_path / "root"
    df = make_image_dataset(root, n=20, size=(16, 16))
    df["group"] = df["image"]                        # 20 groups: 10% val = 2 images
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    f = _params(tmp_path, lambda r: (r["data"].update(datasets=["toy"], limit=0), r["data"]["roots"].update(toy=str(root)),
                                     r["splits"].update(ratios=[0.8, 0.1, 0.1], schemes={"toy": "random"}),
                                     r["t2"].update(cross=[])))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--params", str(f), "splits", "--dataset", "toy"]) == 2
    err = capsys.readouterr().err
    assert "splits of toy: split 0 has" in err and "model selection on val needs >= 3 val images" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "splits").exists()


def test_notebook_stage_removes_what_it_no_longer_makes(tmp_path, monkeypatch):
    """Item 11: a notebook stage owns its output folder: the rendered notebooks of another tag (t1.head changed)
    are removed when it writes the new ones; item 10: a killed run's .tmp-nb-* folder is removed by `check`, which
    every `dvc repro` runs even when DVC restores the notebook's outputs from its run cache."""
    from nriqa_lib.stages.notebook import remove_stale
    out = tmp_path / "results" / "t1"
    out.mkdir(parents=True)
    for n in ("t1_backbones__head-B.ipynb", "t1_backbones__head-B.html", "t1_backbones__head-B_Sig.ipynb",
              "t1_backbones__head-B_Sig.html", "metrics.json"):
        (out / n).write_text("x")
    remove_stale(out, "t1_backbones", "t1_backbones__head-B_Sig")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "t1_backbones__head-B_Sig.html",
                                                    "t1_backbones__head-B_Sig.ipynb"]
    from nriqa_lib.stages.check import remove_leftovers
    (out / ".tmp-nb-abc").mkdir()
    (out / ".tmp-nb-abc" / "t1.ipynb").write_text("half")
    monkeypatch.chdir(tmp_path)
    assert remove_leftovers() == [str(Path("results/t1/.tmp-nb-abc"))]
    assert not (out / ".tmp-nb-abc").exists()


def test_paths_are_resolved_before_the_inside_root_and_duplicate_checks(tmp_path):
    """Item 12: './images/x' and 'images//x' are the same image (a duplicate), and a symlink to a file outside the
    dataset root is refused."""
    from nriqa_lib.data.manifest import ManifestError, load_dataset
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6)
    mdir = tmp_path / "m"
    dup = pd.concat([df, df.iloc[[1]].assign(image="./" + df["image"][1].replace("/", "//"))], ignore_index=True)
    write_manifest(mdir, "toy", dup)
    with pytest.raises(ManifestError, match=r"row 8: duplicate image 'images/img_001.png' \(first at row 3\)"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)
    outside = tmp_path / "secret.png"
    (root / df["image"][2]).rename(outside)
    os.symlink(outside, root / df["image"][2])
    write_manifest(mdir, "toy", df)
    with pytest.raises(ManifestError, match=r"row 4 \(images/img_002.png\): resolves outside the dataset root"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)


def test_disk_full_names_the_file_and_a_corrupt_weight_file_is_not_present(tmp_path, monkeypatch):
    """Item 14: an OSError without a file name (numpy's "cannot write: N requested and M written") gets the path of
    the file being written; a truncated safetensors / zip checkpoint is reported corrupt by `weights check`."""
    import errno

    from nriqa_lib.core.io import atomic_path
    target = tmp_path / "features.npy"
    with pytest.raises(OSError) as e:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "cannot write: 25600 requested and 10208 written")
    assert e.value.filename == str(target) and not list(tmp_path.iterdir())
    # torch.save on a full disk raises RuntimeError ("[enforce fail at inline_container.cc] unexpected pos ...",
    # seen in CI while a checkpoint was written): one OSError line naming the file and the free space
    with pytest.raises(OSError, match=r"could not write .*ckpt\.pt: \[enforce fail.* MiB free on its disk\)$"):
        with atomic_path(tmp_path / "ckpt.pt") as tmp:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 371897920 vs 371897808")
    assert not list(tmp_path.iterdir())
    import torch
    from safetensors.torch import save_file

    from nriqa_lib.backbones.registry import REGISTRY
    from nriqa_lib.backbones.weights import weight_source
    good = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1000)}, good)
    assert weight_source(REGISTRY["resnet50"], str(good))["present"]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:-100])
    w = weight_source(REGISTRY["resnet50"], str(bad))
    assert not w["present"] and "corrupt" in w["problem"]
    pth = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1000)}, pth)
    pth.write_bytes(pth.read_bytes()[:200])
    w = weight_source(REGISTRY["resnet50"], str(pth))
    assert not w["present"] and "corrupt" in w["problem"]


def test_constant_mos_and_non_finite_features_are_one_line(tmp_path, monkeypatch, capsys):
    """Item 8: all-identical MOS is refused where the dataset is read (SRCC of a constant is undefined); a
    features file with NaN/inf is not valid: the stage reading it says which file and row, and the cache check
    (whose docstring promised "finite") treats such an entry as broken and recomputes it."""
    from nriqa_lib.data.manifest import ManifestError, load_dataset
    from nriqa_lib.extraction.cache import finished_entry
    from nriqa_lib.features.sets import FeatureSet, load_feature_set, save_feature_set
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6)
    df["mos"] = 0.5
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    with pytest.raises(ManifestError, match=r"all 6 MOS values are 0\.5; SRCC and PLCC against a constant are "
                                            r"undefined"):
        load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)
    feats = np.ones((3, 4), np.float32)
    feats[1, 2] = np.nan
    save_feature_set(FeatureSet(feats, ["a", "b", "c"], {"key": "k"}), tmp_path / "f")
    with pytest.raises(FloatingPointError, match=r"features\.npy: row 1 \(b\) is not finite"):
        load_feature_set(tmp_path / "f")
    assert finished_entry(tmp_path / "f", ["a", "b", "c"]) is None and not (tmp_path / "f" / "features.npy").exists()


def test_a_switched_root_or_changed_content_changes_what_dvc_tracks(tmp_path, monkeypatch):
    """Item 4: results/data/<dataset>.json (written by `check`, a dep of every stage of that dataset in dvc.yaml)
    holds the root as configured and a digest of the content: a root switched with NRIQA_ROOT_<NAME> to a copy
    where one image differs changes it, the same content under the same root does not. Item 5: the hash cache
    trusts an unchanged (path, size, mtime), as DVC does (documented); `cli hash --rehash` hashes again."""
    import shutil

    from nriqa_lib.core.config import Params
    from nriqa_lib.pipeline import dvcfile
    from nriqa_lib.stages.check import write_fingerprints
    spec = yaml.safe_load(dvcfile.render())["stages"]
    for st in ("splits", "features", "heads", "zeroshot", "finetune", "resolution"):
        assert "results/data/${item.dataset}.json" in spec[st]["deps"], st
    root = tmp_path / "root"
    df = make_image_dataset(root, n=6).drop(columns="sha256")
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    monkeypatch.chdir(tmp_path)
    p = Params()
    p = p.model_copy(update={"data": p.data.model_copy(update={"datasets": ["toy"], "roots": {"toy": str(root)}})})
    out = tmp_path / "results" / "data"
    write_fingerprints(p, out)
    first = (out / "toy.json").read_text()
    write_fingerprints(p, out)
    assert (out / "toy.json").read_text() == first                       # same data: nothing for DVC to rerun
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    monkeypatch.setenv("NRIQA_ROOT_TOY", str(copy))
    write_fingerprints(p, out)
    moved = json.loads((out / "toy.json").read_text())
    assert moved["root"] == f"{copy} (NRIQA_ROOT_TOY)" and moved["content_sha256"] == json.loads(first)["content_sha256"]
    from PIL import Image
    img = copy / df["image"][3]
    Image.new("RGB", (64, 48), (9, 9, 9)).save(img, format="BMP")     # BMP: a fixed size for a fixed shape
    write_fingerprints(p, out)
    changed = json.loads((out / "toy.json").read_text())
    assert changed["content_sha256"] != moved["content_sha256"]
    # item 5 / issue 37 E5: same size and mtime restored -> before, the hash cache kept the old hash (stale
    # features until --rehash); it now also keys on ctime and inode, which no user tool restores
    st = img.stat()
    Image.new("RGB", (64, 48), (200, 9, 9)).save(img, format="BMP")
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert img.stat().st_size == st.st_size and img.stat().st_mtime_ns == st.st_mtime_ns
    write_fingerprints(p, out)
    replaced = json.loads((out / "toy.json").read_text())["content_sha256"]
    assert replaced != changed["content_sha256"]
    f = _params(tmp_path, lambda r: (r["data"].update(datasets=["toy"]), r["data"]["roots"].update(toy=str(root))))
    assert cli.main(["--params", str(f), "hash", "--dataset", "toy", "--rehash"]) == 0
    write_fingerprints(p, out)
    assert json.loads((out / "toy.json").read_text())["content_sha256"] == replaced


def _turned_dataset(tmp_path):
    """A 4-image toy set whose image 1 is stored turned a quarter (PIL ROTATE_90) with EXIF orientation 6
    ("rotate 90 CW to display"), image 2 is a 2-frame animated GIF; returns (upright image 1, GIF frames)."""
    from PIL import Image
    from nriqa_lib.data.manifest import sha256_file
    root = tmp_path / "root"
    df = make_image_dataset(root, n=4, size=(40, 24))
    upright = Image.open(root / df["image"][1]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(root / df["image"][1], exif=exif.tobytes())
    g = np.random.default_rng(5)
    frames = [Image.fromarray((g.random((24, 40, 3)) * 255).astype(np.uint8)).convert("P") for _ in range(2)]
    frames[0].save(root / "images/anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    df.loc[2, "image"] = "images/anim.gif"
    df["sha256"] = [sha256_file(root / r) for r in df["image"]]
    write_manifest(tmp_path / "m", "toy", df)
    return root, df, upright, frames


def test_exif_orientation_applied_and_gif_frame_named(tmp_path):
    """Item 13: a photo stored sideways with an EXIF orientation tag is decoded upright (data.exif_transpose,
    default true), as stored when false (P1's and P2's code); an animated GIF gives its first frame, and the
    features stage says in one line how many images were turned and which frame a multi-frame image uses. The
    rule is part of every cache key (features, views, pixels, checkpoints) only when applied."""
    from PIL import Image
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.features.decode import decode_notes, load_image
    from nriqa_lib.training.pixels import squash
    root, df, upright, frames = _turned_dataset(tmp_path)
    p = root / df["image"][1]
    assert np.array_equal(np.asarray(load_image(p)), np.asarray(upright))          # turned upright
    stored = np.asarray(load_image(p, exif=False))
    assert stored.shape == (40, 24, 3) and np.array_equal(stored, np.asarray(upright.transpose(Image.Transpose.ROTATE_90)))
    want = np.asarray(upright.resize((16, 16), Image.Resampling.BICUBIC))
    assert np.array_equal(squash(p, 16), want)                                       # the fine-tuning pixel cache
    gif = np.asarray(load_image(root / "images/anim.gif"))
    assert np.array_equal(gif, np.asarray(frames[0].convert("RGB")))
    assert not np.array_equal(gif, np.asarray(frames[1].convert("RGB")))
    on = load_dataset("toy", {"toy": str(root)}, manifest_dir=tmp_path / "m")
    off = load_dataset("toy", {"toy": str(root)}, manifest_dir=tmp_path / "m", exif_transpose=False)
    assert decode_notes(on) == ("toy: 1 of 4 images carry an EXIF orientation that turns them, turned upright "
                                "(data.exif_transpose: true); 1 have several frames (the first frame is used)")
    assert "read as stored (data.exif_transpose: false)" in decode_notes(off)
    import hashlib
    h = hashlib.sha256(b"toy")                              # off: the hash caches had before the rule existed
    h.update(off.table[["image", "sha256"]].to_csv(index=False).encode())
    assert off.content_hash == h.hexdigest() and on.content_hash != off.content_hash
    # T5's cost counts the upright size: the four images are one input shape, two when read as stored
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.features.transforms import build_transform
    from nriqa_lib.training.resolution import dataset_cost
    bb = create_backbone("tf_efficientnet_lite0", pretrained=False)
    count = lambda bb, size, x: float(x.shape[-1] * x.shape[-2])        # noqa: E731 (a stand-in FLOP count)
    assert dataset_cost(bb, on, "native", count, build_transform)["distinct_inputs"] == 1
    assert dataset_cost(bb, off, "native", count, build_transform)["distinct_inputs"] == 2


def test_exif_transpose_is_a_tracked_param_of_every_decoding_stage():
    """Item 13: data.exif_transpose reaches every stage that decodes images (DVC re-runs them when it changes) and
    the paper profile reads the pixels as stored, as P1's and P2's code do."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in ("features", "zeroshot", "finetune", "resolution", "figures"):
        assert "data.exif_transpose" in dvc[stage]["params"], stage
    assert load_params(REPO / "params.yaml").data.exif_transpose is True
    assert yaml.safe_load((REPO / "params-paper.yaml").read_text())["data"]["exif_transpose"] is False
