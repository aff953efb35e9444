import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_image_dataset, write_manifest
from nriqa_lib import cli
from nriqa_lib.config import ConfigError, load_params


def _params(tmp_path, mutate):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(raw)
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


def test_committed_params_load():
    p = load_params(REPO / "params.yaml")
    assert p.features.backbones[:3] == ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
    assert p.splits.n_splits == 10 and p.train.select_on == "val" and not p.train.margin_loss_swapped
    paper = load_params(REPO / "params-paper.yaml")
    assert paper.train.select_on == "test" and paper.train.margin_loss_swapped
    assert {"clip_vit_b16", "siglip2_so400m_p16_512", "dinov2_vitb14", "dinov3_vitb16", "pe_core_l14",
            "resnet152"} <= set(paper.features.backbones)


@pytest.mark.parametrize("mutate,pattern", [
    (lambda r: r["train"].update(lrr=0.1), r"unknown key train\.lrr"),
    (lambda r: r.update(trian={}), r"unknown key trian"),
    (lambda r: r["features"].update(backbones=["tf_efficientnet_lite9"]), r"unknown backbone 'tf_efficientnet_lite9'"),
    (lambda r: r["train"].update(epochs="ten"), r"train\.epochs should be int"),
    (lambda r: r["t2"].update(heads=["B", "swish9"]), r"unknown head 'swish9'"),
    (lambda r: r["splits"]["schemes"].update(clive="kfold"), r"splits\.schemes\.clive='kfold'"),
    (lambda r: r["data"]["roots"].pop("clive"), r"dataset 'clive' has no data\.roots\.clive"),
])
def test_params_typos_fail_in_one_line(tmp_path, mutate, pattern, capsys):
    f = _params(tmp_path, mutate)
    with pytest.raises(ConfigError, match=pattern) as e:
        load_params(f)
    assert "\n" not in str(e.value)
    assert cli.main(["--params", str(f), "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: params:") and len(err.splitlines()) == 1


def test_missing_data_root_fails_at_check(tmp_path, capsys):
    f = _params(tmp_path, lambda r: r["data"]["roots"].update(clive="/no/such/clive"))
    assert cli.main(["--params", str(f), "check"]) == 2
    assert "data root of 'clive' (data.roots.clive=/no/such/clive) is not a directory" in capsys.readouterr().err


def test_bad_manifest_writes_no_split_file(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    df = make_image_dataset(root, n=30, size=(16, 16))
    (root / df["image"][2]).unlink()
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    f = _params(tmp_path, lambda r: (r["data"].update(datasets=["toy"]), r["data"]["roots"].update(toy=str(root))))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--params", str(f), "features", "--dataset", "toy", "--backbone", "random_tf_efficientnet_lite0"]) == 2
    assert "row 4 (images/img_002.png): file missing" in capsys.readouterr().err
    assert not (tmp_path / "features").exists()
    assert cli.main(["--params", str(f), "splits", "--dataset", "toy"]) == 2
    assert not (tmp_path / "splits").exists()
    # once the file is back, the same call writes its split file
    make_image_dataset(root, n=30, size=(16, 16))
    assert cli.main(["--params", str(f), "splits", "--dataset", "toy"]) == 0
    sp = pd.read_csv(tmp_path / "splits" / "toy.csv")
    assert sp["split"].nunique() == 10 and set(sp["part"]) == {"train", "val", "test"}
