"""Issue 37 (never a wrong number, round three): each case the red team met, where before the change it tests the
run exited 0 with a wrong number or ended in a traceback. Every test here failed before that change."""
import json

import numpy as np
import pytest

from conftest import make_image_dataset, params_file


def _entry(tmp_path, n=5, d=4):
    from nriqa_lib.features.sets import FeatureSet, save_feature_set
    feats = np.arange(n * d, dtype=np.float32).reshape(n, d) / 7
    images = [f"i{k}.png" for k in range(n)]
    save_feature_set(FeatureSet(feats, images, {"key": "k"}), tmp_path / "e")
    return tmp_path / "e", feats, images


def _npy_data_offset(f):
    raw = f.read_bytes()
    return raw, len(raw) - 5 * 4 * 4        # the header, then 5 x 4 float32


@pytest.mark.parametrize("damage", ["flip_a_byte", "swap_two_rows"])
def test_e1_a_corrupted_feature_cache_entry_is_dropped_and_said(tmp_path, capsys, damage):
    """E1: flipping a byte or swapping two rows of a cached features.npy went unnoticed (only shape and finiteness
    were checked) and changed the stage's output by up to 3.41; now meta.json records the content's sha256, the
    entry is removed with one line and recomputed, and the stage output refuses the same damage in one line."""
    from nriqa_lib.extraction.cache import finished_entry
    from nriqa_lib.features.sets import load_feature_set
    root, feats, images = _entry(tmp_path)
    assert finished_entry(root, images) is not None and load_feature_set(root).features.tobytes() == feats.tobytes()
    f = root / "features.npy"
    raw, off = _npy_data_offset(f)
    if damage == "flip_a_byte":
        b = bytearray(raw)
        b[off + 21] ^= 0x01
        f.write_bytes(bytes(b))
    else:
        bad = feats.copy()
        bad[[1, 3]] = bad[[3, 1]]
        f.write_bytes(raw[:off] + bad.tobytes())
    assert np.isfinite(np.load(f)).all() and np.load(f).shape == feats.shape     # what the old check looked at
    with pytest.raises(FloatingPointError, match=r"features\.npy: content does not match the sha256 in meta\.json; "
                                                 r"not a valid feature set, rerun") as e:
        load_feature_set(root)
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert finished_entry(root, images) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "content does not match" in err[0] and "recomputing" in err[0]
    assert not f.exists() and not (root / "meta.json").exists()


@pytest.mark.parametrize("meta", ['{"key": "k", "dim": 4', "[1, 2]", ""])
def test_t4_a_corrupt_meta_json_drops_the_entry_instead_of_failing_every_run(tmp_path, capsys, meta):
    """T4: a corrupt meta.json in a cache entry raised JSONDecodeError on every later run (the entry was never
    dropped); now it is one line, the entry is removed, and the next call finds nothing (recompute)."""
    from nriqa_lib.extraction.cache import finished_entry
    from nriqa_lib.features.sets import load_feature_set
    root, _, images = _entry(tmp_path)
    (root / "meta.json").write_text(meta)
    with pytest.raises(FloatingPointError, match=r"meta\.json: (unreadable \(JSONDecodeError\)|not a JSON object)"):
        load_feature_set(root)
    assert finished_entry(root, images) is None
    assert "entry removed, recomputing" in capsys.readouterr().err
    assert finished_entry(root, images) is None and not (root / "features.npy").exists()


def test_e1_an_entry_written_before_checksums_is_recomputed(tmp_path, capsys):
    """An entry without a checksum (written by an earlier version) cannot prove its content: recomputed, said."""
    from nriqa_lib.extraction.cache import finished_entry
    root, _, images = _entry(tmp_path)
    meta = json.loads((root / "meta.json").read_text())
    del meta["sha256"]
    (root / "meta.json").write_text(json.dumps(meta))
    assert finished_entry(root, images) is None
    assert "no content checksum" in capsys.readouterr().err


@pytest.mark.parametrize("sidecar", ["[1, 2, 3]", '{"%s": [%s, 7]}', '{"%s": [%s, null, true]}', '{"%s": [%s, "abc"]}'])
def test_t5_a_sha256_sidecar_of_the_wrong_shape_is_rehashed_not_a_traceback(tmp_path, sidecar):
    """T5: a sha256 sidecar holding JSON of another shape ended in a traceback (AttributeError/TypeError) or blamed
    the image; now malformed entries are dropped and the files hashed again, and the sidecar rewritten well-formed."""
    from nriqa_lib.data.manifest import HashSidecar, sha256_file, validate_manifest
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    f0 = root / df["image"].iloc[0]
    st = f0.stat()
    side = tmp_path / "side.json"
    side.write_text(sidecar.replace("%s", str(f0.resolve()), 1).replace("%s", json.dumps([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])))
    hashes = validate_manifest(df, root, sidecar=HashSidecar(side))
    assert hashes == [sha256_file(root / r) for r in df["image"]]
    assert set(json.loads(side.read_text())) == {str((root / r).resolve()) for r in df["image"]}


def test_a_wrong_hash_in_the_sidecar_is_not_blamed_on_the_image(tmp_path):
    """Hygiene: a well-formed but wrong hash in the sidecar (the file unchanged) was reported as the image's sha256
    mismatch; the file is hashed again before the image is blamed, and the sidecar corrected. A changed image is
    still refused."""
    from nriqa_lib.data.manifest import HashSidecar, ManifestError, validate_manifest
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    side = tmp_path / "side.json"
    validate_manifest(df, root, sidecar=HashSidecar(side))
    known = json.loads(side.read_text())
    k = str((root / df["image"].iloc[1]).resolve())
    known[k][1] = "0" * 64
    side.write_text(json.dumps(known))
    validate_manifest(df, root, sidecar=HashSidecar(side))
    assert json.loads(side.read_text())[k][1] == df["sha256"].iloc[1]
    (root / df["image"].iloc[1]).write_bytes((root / df["image"].iloc[0]).read_bytes())
    with pytest.raises(ManifestError, match=r"row 3 \(images/img_001\.png\): sha256 mismatch"):
        validate_manifest(df, root, sidecar=HashSidecar(side))


@pytest.mark.parametrize("scale,pattern", [
    ("{nominal_range: [0, 0]}", r"original_scale\.nominal_range must be two finite numbers \[low, high\] with low < high"),
    ("{nominal_range: '0-100'}", r"original_scale\.nominal_range must be two finite numbers"),
    ("{nominal_range: [100]}", r"original_scale\.nominal_range must be two finite numbers"),
    ("{nominal_range: [0, 100], observed_range: [5, .nan]}", r"original_scale\.observed_range must be two finite"),
    ("'0 to 100'", r"original_scale must be a mapping"),
])
def test_t3_a_bad_dataset_card_is_refused_at_check_in_one_line(tmp_path, scale, pattern):
    """T3: cards with nominal_range [0, 0], '0-100', [100] or a string original_scale passed `check` (which never
    read the cards) and ended in ZeroDivision/Type/Index/AttributeError in the splits stage; now `check`'s presence
    check reads and validates the card, and every reader of the dataset refuses it in one line naming the file."""
    from conftest import write_manifest
    from nriqa_lib.data.manifest import ManifestError, check_present, load_dataset
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    (mdir / "toy.yaml").write_text(f"dataset: toy\noriginal_scale: {scale}\n")
    for call in (lambda: check_present("toy", {"toy": str(root)}, manifest_dir=mdir),
                 lambda: load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir, hash_cache=None)):
        with pytest.raises(ManifestError, match=r"toy\.yaml: " + pattern) as e:
            call()
        assert "\n" not in str(e.value)


def test_t3_check_refuses_a_mos_outside_the_card_range(tmp_path):
    """`check` now also holds the manifest's MOS to the card's declared range (before: only the stages did)."""
    from conftest import write_manifest
    from nriqa_lib.data.manifest import ManifestError, check_present
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    df.loc[1, "mos_raw"] = 140.0
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    (mdir / "toy.yaml").write_text("dataset: toy\noriginal_scale: {nominal_range: [0, 100]}\n")
    with pytest.raises(ManifestError, match=r"row 3 \(images/img_001\.png\): mos_raw 140 is outside the card's "
                                            r"declared range \[0, 100\]"):
        check_present("toy", {"toy": str(root)}, manifest_dir=mdir)


def test_e3_a_float_tiff_is_mapped_or_refused_never_black(tmp_path):
    """E3: a 32-bit float TIFF (PIL mode F) in [0, 1] decoded near black (mean 8.8e-5) without a word; now [0, 1]
    maps to 0-255 (x 255, rounded: the same pixels as the 8-bit image it came from), and values outside [0, 1],
    which have no faithful 8-bit reading, are refused in one line naming the file."""
    from PIL import Image
    from nriqa_lib.data.manifest import ManifestError
    from nriqa_lib.features.decode import load_image
    g = np.random.default_rng(0)
    u8 = (g.random((24, 32)) * 255).astype(np.uint8)
    Image.fromarray(u8.astype(np.float32) / 255, "F").save(tmp_path / "f.tif")
    got = np.asarray(load_image(tmp_path / "f.tif"))
    assert got.shape == (24, 32, 3) and (got[..., 0] == u8).all() and (got[..., 2] == u8).all()
    Image.fromarray(u8.astype(np.float32) * 4, "F").save(tmp_path / "big.tif")
    with pytest.raises(ManifestError, match=r"big\.tif: a 32-bit float image with values in \[0, 1016\] has no "
                                            r"faithful 8-bit mapping") as e:
        load_image(tmp_path / "big.tif")
    assert "\n" not in str(e.value)


def test_t8_check_outputs_on_a_run_with_other_backbones_names_what_is_missing(tmp_path):
    """T8: scripts/check_outputs.py ended in a KeyError on a run with other backbones (it read lite0's T1 row by
    name); now each backbone with a control in features.backbones is checked, others are said to be unchecked, and
    missing outputs are listed (exit 1), never a traceback."""
    import subprocess
    import sys

    from conftest import REPO
    params_file(tmp_path, lambda r: r["features"].update(backbones=["resnet50", "tf_efficientnet_lite1",
                                                                     "random_tf_efficientnet_lite0"]))
    (tmp_path / "notebooks").symlink_to(REPO / "notebooks")
    (tmp_path / "results" / "t1").mkdir(parents=True)
    t1 = {"clive": {"resnet50": {"srcc": 0.71}, "random_tf_efficientnet_lite0": {"srcc": 0.2},
                    "tf_efficientnet_lite1": {"srcc": 0.6}}}
    (tmp_path / "results" / "t1" / "metrics.json").write_text(json.dumps(t1))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "check_outputs.py")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert ("check: no CLIVE T1 row of tf_efficientnet_lite0 and its control random_tf_efficientnet_lite0: that "
            "comparison is not checked") in r.stdout
    assert "missing results/t2/tables/t2_activations.csv" in r.stdout


def test_t7_a_notebook_whose_input_is_missing_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """T7: `cli notebook` with an input not yet made ended in papermill's 49-line traceback; now one line naming the
    notebook and the library's own message (which file, which stage makes it), exit 2, nothing written."""
    from conftest import REPO
    from nriqa_lib import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").symlink_to(REPO / "notebooks")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert cli.main(["--params", str(REPO / "params.yaml"), "notebook", "t1", "--out", "results/t1",
                     "--tag", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: notebook t1: FileNotFoundError: "), err
    assert "dvc repro" in err[0]
    assert not list((tmp_path / "results" / "t1").glob("t1*"))


def test_s2_the_rendered_pages_load_no_script_from_the_network(tmp_path):
    """S2: every notebook page (and so the committed site) loaded require.js and MathJax from a CDN, and mermaid
    where a page had a diagram, without integrity hashes; the pages now render with no external script and no
    script at all, the tables and figures kept."""
    import re

    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
    from conftest import REPO
    from nriqa_lib.stages.notebook import render_html
    nb = new_notebook(cells=[new_markdown_cell("# T9\\nA table, a figure and a diagram:\\n```mermaid\\ngraph LR; a-->b\\n```"),
                             new_code_cell("t", outputs=[
                                 new_output("display_data", data={"text/html": "<table><tr><td>0.61</td></tr></table>"}),
                                 new_output("display_data", data={"image/png": "iVBORw0KGgo="})])])
    nbformat.write(nb, tmp_path / "t9.ipynb")
    html = render_html(tmp_path / "t9.ipynb")
    assert "<td>0.61</td>" in html and "data:image/png;base64,iVBORw0KGgo=" in html
    assert "<script" not in html and not re.search(r"https?://[^\\s\"']*\\.m?js", html)
    for page in sorted((REPO / "docs" / "site").glob("*.html")):
        text = page.read_text()
        assert not re.search(r"<script[^>]*src=\"https?://", text) and "cdnjs" not in text, page.name


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_profile_restores_params_yaml_when_terminated(tmp_path, sig):
    """Researcher's path: `cli profile` restored params.yaml in a `finally:` that SIGTERM/SIGHUP skipped (`timeout`,
    a SLURM limit, a dropped session), leaving the try's values for the next plain `dvc repro`; now both signals
    stop the experiment (its process is terminated) and params.yaml is byte-identical to before."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from conftest import REPO
    base = "# the default\ntrain:\n  lr: 0.001   # a comment\n"
    (tmp_path / "params.yaml").write_text(base)
    (tmp_path / "prof.yaml").write_text("train:\n  lr: 0.5\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "dvc").write_text("#!/bin/sh\n# a dvc exp run that writes the try's params, then works for a while\n"
                              "echo 'train: {lr: 0.5}' > params.yaml\necho $$ > dvc.pid\nexec sleep 120\n")
    (bin_ / "dvc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", "from nriqa_lib.pipeline.profiles import run_profile; "
                          "raise SystemExit(run_profile('p', 'prof.yaml'))"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if (tmp_path / "dvc.pid").is_file() and "0.5" in (tmp_path / "params.yaml").read_text():
            break
        time.sleep(0.1)
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + getattr(signal, sig), err
    assert (tmp_path / "params.yaml").read_text() == base and "restored" in out
    pid = int((tmp_path / "dvc.pid").read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_weights_tools_look_at_what_check_requires_and_fetch_hf_configs(tmp_path, monkeypatch, capsys):
    """Researcher's path: (1) `weights list/check` looked at features.backbones + t4.clip_models while `check` also
    requires t5.backbones: a cache holding what `weights check` listed passed it and failed `check`; now they list
    the same backbones. (2) A transformers snapshot with model.safetensors only was "present" and then failed to
    load (no config.json) or would load with default preprocessing (no preprocessor_config.json); now it is
    reported with what is missing, and an edited preprocessor config changes the identity DVC tracks."""
    from safetensors.torch import save_file
    import torch
    from conftest import REPO
    from nriqa_lib import cli
    from nriqa_lib.backbones.registry import REGISTRY
    from nriqa_lib.backbones.weights import hub_location, weight_identity
    params_file(tmp_path, lambda r: r["t5"].update(backbones=["resnet50"], datasets=["clive"]))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["--params", str(tmp_path / "params.yaml"), "weights", "list"]) == 0
    assert "resnet50: hf HF timm/resnet50" in capsys.readouterr().out

    name = "dinov2_vitb14_hf"
    repo = hub_location(REGISTRY[name])[0]
    snap = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / ("ab" * 20)
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("ab" * 20)
    save_file({"w": torch.zeros(2)}, str(snap / "model.safetensors"))
    assert cli.main(["--params", str(REPO / "params.yaml"), "weights", "check", name]) == 2
    out = capsys.readouterr().out
    assert "CORRUPT: config.json and preprocessor_config.json missing beside the weights" in out
    assert f"weights fetch {name}" in out
    (snap / "config.json").write_text("{}")
    (snap / "preprocessor_config.json").write_text('{"size": {"height": 224, "width": 224}}')
    assert cli.main(["--params", str(REPO / "params.yaml"), "weights", "check", name]) == 0
    before = weight_identity(REGISTRY[name])
    (snap / "preprocessor_config.json").write_text('{"size": {"height": 518, "width": 518}}')
    assert weight_identity(REGISTRY[name]) != before and before.startswith("hf:")


def test_a_gpu_named_without_one_is_one_line_from_a_stage_run_directly(tmp_path, monkeypatch, capsys):
    """Researcher's path: `run.device: cuda` without a GPU was one line at `check` but a 14-line traceback from a
    stage run directly (`python -m nriqa_lib.cli features ...`); now one line there too (exit 2)."""
    import torch
    from nriqa_lib import cli
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    params_file(tmp_path, lambda r: (r["run"].update(device="cuda"), r["finetune"].update(regimes=["lora"])))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert cli.main(["--params", str(tmp_path / "params.yaml"), "finetune", "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.device='cuda' but torch sees no CUDA device" in err[0], err


# leads `check` accepted and the hygiene list: each now refused in one line naming the key
@pytest.mark.parametrize("mutate,pattern", [
    (lambda r: r["features"].update(weights={"clip_vit_b61": "/m/x.pt"}),
     r"unknown backbone 'clip_vit_b61' \(features\.weights\); did you mean"),
    (lambda r: r["t2"].update(cross=[["clive", "clive"]]), r"t2\.cross entry \['clive', 'clive'\] trains and tests on one"),
    (lambda r: r["t5"].update(policies=["squash", "squash_0"]), r"t5\.policies has 'squash_0'; squash_<N> takes N in \[32, 4096\]"),
    (lambda r: r["t5"].update(policies=["squash", "squash_99999"]), r"t5\.policies has 'squash_99999'; squash_<N>"),
    (lambda r: r["t5"].update(policies=["squash", "center_crop", "squash"]), r"t5\.policies lists 'squash' twice"),
    (lambda r: r["t4"].update(pre_resize={"spaq": [1, 1]}), r"t4\.pre_resize\.spaq=\[1, 1\]; give \[height, width\], each in \[32, 4096\]"),
    (lambda r: r["t4"].update(pre_resize={"spaq": [448]}), r"t4\.pre_resize\.spaq=\[448\]; give \[height, width\]"),
    (lambda r: r["features"].update(image_size=1), r"features\.image_size=1; use 0 \(each backbone its own size\) or 32 to 4096"),
    (lambda r: r["features"].update(backbones=["tf_efficientnet_lite0", "tf_efficientnet_lite0"]),
     r"features\.backbones lists 'tf_efficientnet_lite0' twice"),
    (lambda r: r["t2"].update(heads=[]), r"t2\.heads is empty; list at least one"),
    (lambda r: r["t2"].update(heads=["B", "gelu", "B"]), r"t2\.heads lists 'B' twice"),
    (lambda r: r["t5"].update(heads=["ridge", "ridge"]), r"t5\.heads lists 'ridge' twice"),
    (lambda r: r["finetune"].update(heads=["B", "B"]), r"finetune\.heads lists 'B' twice"),
])
def test_accepted_leads_are_refused_in_one_line(tmp_path, mutate, pattern):
    from nriqa_lib.core.config import ConfigError
    from nriqa_lib.core.params import load_params
    from nriqa_lib.stages.check import check_params
    with pytest.raises(ConfigError, match=pattern) as e:
        check_params(load_params(params_file(tmp_path, mutate)))
    assert "\n" not in str(e.value)


def test_yaml_merge_keys_are_read_and_duplicates_still_refused(tmp_path):
    """Hygiene: YAML merge keys (`<<: *anchor`) were rejected as "not valid YAML" (the duplicate-key loader could
    not construct the merge key); now merged, the mapping's own keys overriding, and a real duplicate still refused."""
    from conftest import REPO
    from nriqa_lib.core.config import ConfigError
    from nriqa_lib.core.params import load_params
    text = (REPO / "params.yaml").read_text()
    assert "\ntrain:\n  epochs: 12" in text
    f = tmp_path / "params.yaml"
    f.write_text(text.replace("\ntrain:\n  epochs: 12", "\ntrain:\n  <<: {epochs: 3}\n  epochs: 12"))
    assert load_params(f).train.epochs == 12            # the mapping's own key wins
    f.write_text(text.replace("\ntrain:\n  epochs: 12", "\ntrain:\n  <<: {epochs: 3}"))
    assert load_params(f).train.epochs == 3             # the merged one where the mapping has none
    f.write_text(text.replace("\ntrain:\n  epochs: 12", "\ntrain:\n  epochs: 3\n  epochs: 12"))
    with pytest.raises(ConfigError, match="duplicate key 'epochs'"):
        load_params(f)


def test_a_missing_liqe_folder_is_refused_at_check(tmp_path, capsys):
    """Lead: a missing splits.liqe_folder passed `check` and failed the splits stage; now `check` names the folder
    and the first missing split file."""
    from nriqa_lib import cli
    f = params_file(tmp_path, lambda r: r["splits"].update(liqe_folder=str(tmp_path / "nowhere")))
    assert cli.main(["--params", str(f), "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splits.liqe_folder=" in err[0] and "lacks 1_train.txt and 29 more" in err[0], err


def test_the_split_size_message_offers_only_what_would_help():
    """Hygiene: with train.select_on already `test`, a split too small for training was told to "use
    train.select_on: test"; the advice now names only what can fix it."""
    import pandas as pd
    from nriqa_lib.core.config import ConfigError
    from nriqa_lib.stages.splits import check_sizes
    sp = pd.DataFrame({"split": 0, "part": ["train", "train", "test", "test", "test"], "image": list("abcde")})
    with pytest.raises(ConfigError) as e:
        check_sizes(sp, "toy", "test", 5)
    assert "select_on" not in str(e.value) and "raise data.limit or change splits.ratios" in str(e.value)


@pytest.mark.parametrize("kind", ["directory", "fifo", "loop", "broken", "missing"])
def test_what_is_not_an_image_file_is_named_for_what_it_is(tmp_path, kind):
    """Hygiene: a symlink loop, a directory or a FIFO in an image's place was reported as "file missing"; now each
    is named (at `check`'s presence pass and at validation), so the user knows what to fix."""
    import os
    from conftest import write_manifest
    from nriqa_lib.data.manifest import ManifestError, check_present, validate_manifest
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    f = root / df["image"].iloc[1]
    f.unlink()
    if kind == "directory":
        f.mkdir()
    elif kind == "fifo":
        os.mkfifo(f)
    elif kind == "loop":
        f.symlink_to(f)
    elif kind == "broken":
        f.symlink_to(root / "gone.png")
    want = {"directory": r"not an image file \(a directory\)", "fifo": r"not an image file \(a FIFO\)",
            "loop": r"symlink loop", "broken": r"broken symlink: .* -> .*gone\.png", "missing": r"file missing"}[kind]
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    with pytest.raises(ManifestError, match=r"row 3 \(images/img_001\.png\): " + want):
        check_present("toy", {"toy": str(root)}, manifest_dir=mdir)
    with pytest.raises(ManifestError, match=r"row 3 \(images/img_001\.png\): " + want):
        validate_manifest(df, root, decode=False)


def test_a_control_character_in_an_image_name_is_refused(tmp_path):
    """Hygiene: a newline in an image name gave an inconsistent feature set (images.txt holds one name per line)
    and advice that could not fix it; the manifest row is refused in one line."""
    from conftest import write_manifest
    from nriqa_lib.data.manifest import ManifestError, read_manifest
    root = tmp_path / "root"
    df = make_image_dataset(root, n=3)
    df.loc[2, "image"] = "images/img\n002.png"
    mdir = tmp_path / "m"
    f = write_manifest(mdir, "toy", df)
    with pytest.raises(ManifestError, match=r"row 4: image path 'images/img\\n002\.png' holds a control character") as e:
        read_manifest(f)
    assert "\n" not in str(e.value)


def test_a_killed_writes_temp_file_is_removed_by_the_next_write_and_nothing_else(tmp_path):
    """Kill -9: a SIGKILL skips atomic_path's cleanup, so its temp file stayed beside the output (in a DVC directory
    output it changes the folder's hash; in the feature cache it holds the space for good). The next write of that
    output removes temps of dead processes only: not a live process's, not a file of another shape."""
    import subprocess
    import sys

    from nriqa_lib.core.io import atomic_write_text
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".p.csv.tmp{dead_pid}.abc.csv"
        stale_dir = tmp_path / f".p.csv.tmp{dead_pid}.xyz"
        busy = tmp_path / f".p.csv.tmp{live.pid}.def.csv"
        other = [tmp_path / ".p.csv.notes", tmp_path / ".q.csv.tmp{dead_pid}.abc.csv".format(dead_pid=dead_pid),
                 tmp_path / "p.csv.tmp1.abc.csv"]
        for f in (stale, busy, *other):
            f.write_text("x")
        stale_dir.mkdir()
        atomic_write_text(tmp_path / "p.csv", "a,b\n")
        assert not stale.exists() and not stale_dir.exists()
        assert busy.exists() and all(f.exists() for f in other)
        assert (tmp_path / "p.csv").read_text() == "a,b\n"
    finally:
        live.kill()


def test_the_portable_adam_is_torchs_adam_and_leaves_resting_heads_alone():
    """_PortableAdam (train_heads' optimiser for unequal train sizes, written with separately rounded operations so
    that ATen's scalar and AVX2 kernels give the same bits) follows torch.optim.Adam's update to rounding, weight
    decay included, and a head that sits out a step keeps its weights and its step count."""
    import torch

    from nriqa_lib.training.trainer import _PortableAdam
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 70000, dtype=torch.float64, generator=g)       # > one BLOCK per head
    grads = [torch.randn(3, 70000, dtype=torch.float64, generator=g) for _ in range(4)]
    mine = w0.clone()
    opt = _PortableAdam([mine], 1e-2, 0.01, 3)
    refs = [w0[m].clone().requires_grad_(True) for m in range(3)]
    ropts = [torch.optim.Adam([r], lr=1e-2, weight_decay=0.01, foreach=False) for r in refs]
    for s, gr in enumerate(grads):
        active = torch.tensor([True, s % 2 == 0, True])
        mine.grad = gr.clone()
        before = mine[1].clone()
        opt.step(active)
        for m in range(3):
            if active[m]:
                refs[m].grad = gr[m].clone()
                ropts[m].step()
        if not active[1]:
            assert torch.equal(mine[1], before)
    for m in range(3):
        assert torch.allclose(mine[m], refs[m].detach(), rtol=0, atol=1e-13), m
    assert opt.steps == [4, 2, 4]
