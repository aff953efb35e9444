import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_image_dataset, params_file, write_manifest
from nriqa_lib import cli
from nriqa_lib.stages.notebook import run_notebook
from nriqa_lib.core.config import ConfigError
from nriqa_lib.core.params import load_params
from nriqa_lib.stages.check import check_params


def test_committed_params_load():
    p = load_params(REPO / "params.yaml")
    assert p.features.backbones[:3] == ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
    assert p.splits.n_splits == 10 and p.train.select_on == "val" and not p.train.margin_loss_swapped
    paper = load_params(REPO / "params-paper.yaml")
    assert paper.train.select_on == "test" and paper.train.margin_loss_swapped
    assert {"clip_vit_b16_hf", "siglip2_so400m_p16_512_hf", "dinov2_vitb14_hf", "dinov3_vitb16_hf", "pe_core_l14",
            "resnet152_hf"} == set(paper.features.backbones)       # P1's loader wherever transformers has the family


@pytest.mark.parametrize("mutate,pattern", [
    (lambda r: r["train"].update(lrr=0.1), r"unknown key train\.lrr"),
    (lambda r: r.update(trian={}), r"unknown key trian"),
    (lambda r: r["features"].update(backbones=["tf_efficientnet_lite9"]), r"unknown backbone 'tf_efficientnet_lite9'"),
    (lambda r: r["train"].update(epochs="ten"), r"train\.epochs should be int"),
    (lambda r: r["t2"].update(heads=["B", "swish9"]), r"unknown head 'swish9'"),
    (lambda r: r["splits"]["schemes"].update(clive="kfold"), r"splits\.schemes\.clive='kfold'"),
    (lambda r: r["data"]["roots"].pop("clive"), r"dataset 'clive' has no data\.roots\.clive"),
    # meaningless values: one line naming the key and the allowed range
    (lambda r: r["train"].update(epochs=0), r"train\.epochs=0 is out of range; allowed: in \[1, 10000\]"),
    (lambda r: r["train"].update(epochs=-3), r"train\.epochs=-3 is out of range"),
    (lambda r: r["t3"].update(temperature=0), r"t3\.temperature=0\.0 is out of range; allowed: in \(0, 100\]"),
    (lambda r: r["train"].update(hidden=0), r"train\.hidden=0 is out of range"),
    (lambda r: r["train"].update(batch_size=0), r"train\.batch_size=0 is out of range"),
    (lambda r: r["features"].update(batch_size=0), r"features\.batch_size=0 is out of range"),
    (lambda r: r["train"].update(lr=-0.001), r"train\.lr=-0\.001 is out of range; allowed: in \(0, 10\]"),
    (lambda r: r["splits"].update(n_splits=0), r"splits\.n_splits=0 is out of range"),
    (lambda r: r["splits"].update(ratios=[0.7, 0.2, 0.2]), r"splits\.ratios=\[0\.7, 0\.2, 0\.2\].*summing to 1"),
    (lambda r: r["splits"].update(ratios=[0.7, "a", 0.2]), r"splits\.ratios\[1\] should be float, got 'a'"),
    (lambda r: r["stats"].update(alpha=1.5), r"stats\.alpha=1\.5 is out of range; allowed: in \(0, 0\.5\]"),
    (lambda r: r["features"].update(backbones=[]), r"features\.backbones is empty"),
    (lambda r: r["train"].update(micro_batch=5), r"train\.micro_batch=5 must be 0 or divide train\.batch_size=64"),
])
def test_params_typos_fail_in_one_line(tmp_path, mutate, pattern, capsys):
    f = params_file(tmp_path, mutate)
    with pytest.raises(ConfigError, match=pattern) as e:
        check_params(load_params(f))          # the types and ranges when loaded, the names by the check stage
    assert "\n" not in str(e.value)
    assert cli.main(["--params", str(f), "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: params:") and len(err.splitlines()) == 1


def test_a_stage_that_succeeds_ends_with_its_time_and_a_failure_stays_one_line(tmp_path, monkeypatch, capsys):
    """Issue 34 item 1: DVC prints no per-stage time, so each stage's last line on stderr is
    `nriqa: stage NAME took S s` (CI and the notes read them); a failing stage prints only its one-line error."""
    import re
    monkeypatch.chdir(tmp_path)
    f = params_file(tmp_path, lambda r: r["data"].update(datasets=["synthetic"]))
    out = ["--stamp", "ok.txt", "--weights", "w.json", "--data", "data"]
    assert cli.main(["--params", str(f), "check", *out]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"nriqa: stage check took \d+\.\d s", last), last
    assert cli.main(["--params", str(f), "weights", "list"]) == 0          # a tool, not a stage: no time line
    assert "took" not in capsys.readouterr().err
    bad = params_file(tmp_path, lambda r: r["data"].update(datasets=["synthetic"], roots={"synthetic": "/no/such"}))
    assert cli.main(["--params", str(bad), "check", *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "took" not in err[0]


def test_missing_data_root_fails_at_check(tmp_path, capsys):
    f = params_file(tmp_path, lambda r: r["data"]["roots"].update(clive="/no/such/clive"))
    assert cli.main(["--params", str(f), "check"]) == 2
    assert "data root of 'clive' (data.roots.clive=/no/such/clive) is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_a_gpu_that_is_not_there_is_refused_at_check(tmp_path, monkeypatch, capsys, device):
    """Issue 22 item 5: run.device naming an absent GPU (or an index beyond the count) fails `check` in one line,
    before any stage (it used to pass check and die later with a traceback)."""
    import torch
    if device == "cuda:7":          # a machine with one GPU
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    elif torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    f = params_file(tmp_path, lambda r: r["run"].update(device=device))
    assert cli.main(["--params", str(f), "check", "--stamp", str(tmp_path / "ok.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: params: run.device='{device}' but torch sees") and len(err.splitlines()) == 1
    assert not (tmp_path / "ok.txt").exists()


def test_bad_manifest_writes_no_split_file(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    df = make_image_dataset(root, n=30, size=(16, 16))
    (root / df["image"][2]).unlink()
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    f = params_file(tmp_path, lambda r: (r["data"].update(datasets=["toy"]), r["data"]["roots"].update(toy=str(root))))
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


def test_broken_yaml_names_the_file_and_line(tmp_path, capsys):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  epochs: 12\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"params file .*params.yaml line \d+, column \d+: not valid YAML"):
        load_params(f)
    assert cli.main(["--params", str(f), "check"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unknown_backbone_on_the_command_line(capsys):
    assert cli.main(["--params", str(REPO / "params.yaml"), "heads", "--dataset", "clive", "--backbone", "foo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown backbone 'foo' (--backbone)" in err and "run features" not in err and len(err.splitlines()) == 1
    assert cli.main(["--params", str(REPO / "params.yaml"), "heads", "--dataset", "clive", "--backbone",
                     "tf_efficientnet_lite00"]) == 2
    assert "did you mean tf_efficientnet_lite0" in capsys.readouterr().err


def test_corrupt_weights_file_is_named(tmp_path):
    import timm
    import torch
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.backbones.weights import WeightsError
    f = tmp_path / "resnet50.pth"
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), f)
    f.write_bytes(f.read_bytes()[: 1 << 20])                        # truncated download
    with pytest.raises(WeightsError, match=r"weights for backbone 'resnet50': cannot load .*resnet50.pth .*corrupt, "
                                           r"truncated") as e:
        create_backbone("resnet50", weights=str(f))
    assert "\n" not in str(e.value)


def test_unwritable_output_fails_before_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file where a folder must be")
    assert cli.main(["--params", str(REPO / "params.yaml"), "notebook", "t1", "--out", "results/t1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "results" in err and len(err.splitlines()) == 1


def test_disk_full_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import errno
    from nriqa_lib.data.splits import save_splits
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "splits" / "x.csv"))
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OSError):
        save_splits(pd.DataFrame({"a": [1]}), tmp_path / "splits" / "x.csv")
    assert not list((tmp_path / "splits").iterdir())                 # the temp file is gone, no partial output
    monkeypatch.chdir(tmp_path)
    f = params_file(tmp_path, lambda r: None)
    monkeypatch.setenv("NRIQA_ROOT_CLIVE", str(tmp_path))
    from nriqa_lib.stages import splits as splits_stage
    monkeypatch.setattr(splits_stage, "run", lambda *a, **k: full())
    assert cli.main(["--params", str(f), "splits", "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and len(err.splitlines()) == 1


def _tiny_notebook(tmp_path, body):
    """notebooks/tiny.py (the source) and the tiny.ipynb built from it, as scripts/make_notebooks.py builds them."""
    import nbformat
    from nriqa_lib.stages.notebook import build_notebook
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "notebooks" / "tiny.py").write_text('# %% tags=["parameters"]\nparams_file = "params.yaml"\n'
                                                    f'out_dir = "out"\n\n# %%\n{body}\n')
    nbformat.write(build_notebook("tiny", tmp_path / "notebooks"), str(tmp_path / "notebooks" / "tiny.ipynb"))


def test_notebook_reruns_are_byte_identical_and_leave_no_temp_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tiny_notebook(tmp_path, "import pandas as pd\npd.DataFrame({'srcc': [0.5, 0.25]})")
    out = tmp_path / "res"
    (out / ".tmp-nb-999").mkdir(parents=True)                       # left behind by a killed run
    (out / "tmpabc").mkdir()                        # not ours (issue 37 L2: every DIR/tmp* folder was deleted)
    (out / "tmpabc" / "data.txt").write_text("a user's")
    run_notebook("tiny", str(out), "params.yaml", "x-1")
    a = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    assert set(a) == {"tiny__x-1.ipynb", "tiny__x-1.html"}
    assert [d.name for d in out.iterdir() if d.is_dir()] == ["tmpabc"]
    assert (out / "tmpabc" / "data.txt").read_text() == "a user's"
    run_notebook("tiny", str(out), "params.yaml", "x-1")
    b = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    assert a == b                                                    # no papermill timestamps left


def test_a_notebook_whose_ipynb_is_not_its_sources_build_is_refused(tmp_path, monkeypatch):
    """Issue 37 E2: dvc.yaml depended on the .ipynb only, so an edited notebooks/<name>.py left the render stale
    while `dvc status` was clean. The stage now depends on the source too, and refuses, in one line, an .ipynb that
    is not the source's build (before anything is written)."""
    from nriqa_lib.pipeline.registry import registry
    for st in registry().values():
        if st.is_notebook:
            assert f"notebooks/{st.name}.py" in st.deps and f"notebooks/{st.name}.ipynb" in st.deps
    monkeypatch.chdir(tmp_path)
    _tiny_notebook(tmp_path, "x = 1")
    src = tmp_path / "notebooks" / "tiny.py"
    src.write_text(src.read_text().replace("x = 1", "x = 2"))
    with pytest.raises(SystemExit, match="tiny.ipynb is not the build of its source .*tiny.py: run python "
                                         "scripts/make_notebooks.py"):
        run_notebook("tiny", str(tmp_path / "res"), "params.yaml", "x-1")
    assert not (tmp_path / "res").exists()


def test_killed_notebook_stage_leaves_no_temp_dir(tmp_path):
    """SIGTERM (what `kill` and DVC send) during a notebook's cell: the stage exits promptly with 143, before the
    cell's 60 s sleep ends, and leaves neither its work folder nor a partial notebook. (Before, this test ran
    `cli notebook tiny`, which argparse refuses: the work folder never appeared and the kill was never tested.)"""
    import os
    import signal
    import subprocess
    import sys
    import time
    _tiny_notebook(tmp_path, "import time\ntime.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from nriqa_lib.stages.notebook import run_notebook; run_notebook('tiny', 'res', 'params.yaml')"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    t = time.time()
    while not list((tmp_path / "res").glob(".tmp-nb-*")) and time.time() - t < 60 and proc.poll() is None:
        time.sleep(0.2)
    assert list((tmp_path / "res").glob(".tmp-nb-*")), proc.communicate()[1].decode()[-2000:]
    time.sleep(3)                                   # the kernel is in the cell's sleep by now
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)                           # well before the cell's 60 s sleep would end
    assert proc.returncode == 143 and time.time() - t < 30
    assert not list((tmp_path / "res").glob(".tmp-nb-*")) and not list((tmp_path / "res").glob("*.ipynb"))


@pytest.mark.parametrize("profile", ["params-paper.yaml", "params-smoke.yaml"])
def test_profile_as_experiment_overrides_reproduce_the_profile(capsys, tmp_path, profile):
    """`cli profile NAME FILE` = dvc exp run -S for each differing key; DVC's own override function (Hydra,
    which merges mappings) applied to params.yaml gives exactly the profile's params."""
    from dvc.utils.hydra import apply_overrides

    from nriqa_lib.pipeline.profiles import exp_command, overrides
    f = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", f)
    apply_overrides(str(f), overrides(REPO / "params.yaml", REPO / profile))
    assert yaml.safe_load(f.read_text()) == yaml.safe_load((REPO / profile).read_text())
    cmd = exp_command("paper", REPO / profile, REPO / "params.yaml", queue=True)
    assert cmd[:6] == ["dvc", "exp", "run", "-n", "paper", "--queue"] and "++train.select_on=test" in cmd
    assert cli.main(["--params", str(REPO / "params.yaml"), "profile", "paper", str(REPO / profile),
                     "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("dvc exp run -n paper -S")


def test_check_stage_refuses_absent_weights_before_any_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    f = params_file(tmp_path, lambda r: r["features"].update(backbones=["tf_efficientnet_lite0", "siglip2_vit_b16"]))
    assert cli.main(["--params", str(f), "check", "--stamp", str(tmp_path / "ok.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights absent offline for features.backbones / t5.backbones: HF timm/ViT-B-16-SigLIP2/" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ok.txt").exists()
    assert cli.main(["--params", str(REPO / "params.yaml"), "check", "--stamp", str(tmp_path / "ok.txt")]) == 0
    assert (tmp_path / "ok.txt").read_text() == "params OK\n"


def test_params_and_analyses_import_no_torch():
    """Loading (checking) params and importing every analysis and the report need no torch: each notebook
    stage's kernel and CLI process would otherwise pay its 1.8 s import (names come from torch-free
    registries; the models are imported where one is built)."""
    import subprocess
    import sys
    code = ("import sys; from nriqa_lib.core.params import load_params; load_params('params.yaml'); "
            "import nriqa_lib.tables.overview, nriqa_lib.tables.t1, nriqa_lib.tables.t2, nriqa_lib.tables.t3, "
            "nriqa_lib.tables.t4, nriqa_lib.tables.t5, nriqa_lib.tables.t6, nriqa_lib.report.claims; "
            "print('torch' in sys.modules); from nriqa_lib.backbones.models import create_backbone; "
            "from nriqa_lib.heads.mlp import build_head; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_cli_profile_leaves_params_yaml_byte_identical(tmp_path, monkeypatch):
    """Issue 22 item 2: a real `dvc exp run -S` (a one-stage DVC repo) writes the override into params.yaml; after
    `cli profile` the file is byte-identical to before (comments and all), the experiment ran with the profile's
    value, and a second profile is diffed against the default."""
    import shutil
    import subprocess
    if shutil.which("dvc") is None or shutil.which("git") is None:
        pytest.skip("dvc/git not on PATH")
    monkeypatch.chdir(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    base = "# the default\ntrain:\n  lr: 0.001   # a comment DVC would drop\n  epochs: 3\n"
    (tmp_path / "params.yaml").write_text(base)
    (tmp_path / "prof.yaml").write_text("train:\n  lr: 0.5\n  epochs: 3\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: python -c \"import yaml; open('out.txt','w')"
                                       ".write(str(yaml.safe_load(open('params.yaml'))['train']['lr']))\"\n"
                                       "    params: [train.lr]\n    outs: [out.txt]\n")
    run = lambda *c: subprocess.run(c, check=True, capture_output=True, text=True)
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "init")
    from nriqa_lib.pipeline.profiles import overrides, run_profile
    assert run_profile("p", "prof.yaml") == 0
    assert (tmp_path / "params.yaml").read_text() == base
    assert (tmp_path / "out.txt").read_text() == "0.5"          # the experiment ran with the profile's value
    assert overrides("params.yaml", "prof.yaml") == ["++train.lr=0.5"]


def test_state_dict_mismatch_names_the_keys_and_fetch_message_is_not_cut(tmp_path, monkeypatch):
    """Issue 22 item 6: a checkpoint of another architecture names its first missing/unexpected keys (torch's
    first line alone, "Error(s) in loading state_dict for CLIP:", says nothing); an offline `weights fetch`
    message ends with the hint, not mid-word."""
    import torch
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.backbones.weights import WeightsError
    from nriqa_lib.backbones.registry import REGISTRY
    from nriqa_lib.backbones.weights import fetch_weights
    f = tmp_path / "clip.pt"
    torch.save({"visual.bogus.weight": torch.zeros(2), "logit_scale": torch.zeros(())}, f)
    with pytest.raises(WeightsError) as e:
        create_backbone("clip_rn50", weights=str(f))
    msg = str(e.value)
    assert "\n" not in msg and "missing" in msg and "unexpected 1 key(s): visual.bogus.weight" in msg, msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as e:
        fetch_weights(REGISTRY["dinov2_vitb14"])
    assert "\n" not in str(e.value)
    assert str(e.value).endswith("fetch needs the Hugging Face hub (HF_HUB_OFFLINE unset, network access)")
    inner = str(e.value).split("(", 1)[1].rsplit("); fetch needs", 1)[0]
    assert inner.endswith((" ...", ".", ")")) or len(inner) < 290, inner      # a cut is marked at a word boundary


def test_check_refuses_a_missing_image_of_the_limit_sample(tmp_path, monkeypatch, capsys):
    """Issue 22 item 7: a partial dataset under data.limit fails at `check` (not minutes later at `splits`), naming
    the manifest line; an image outside the sample does not stop a data.limit run."""
    from nriqa_lib.data.manifest import sample_index
    root = tmp_path / "root"
    df = make_image_dataset(root, n=30, size=(16, 16))
    keep = sample_index(30, 10, 0)
    inside, outside = int(keep[3]), int(next(i for i in range(30) if i not in set(keep)))
    (root / df["image"][outside]).unlink()
    mdir = tmp_path / "manifests"
    write_manifest(mdir, "toy", df)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(mdir))
    f = params_file(tmp_path, lambda r: (r["data"].update(datasets=["toy"], limit=10, limit_seed=0),
                                     r["data"]["roots"].update(toy=str(root)),
                                     r["features"].update(backbones=["random_tf_efficientnet_lite0"]),
                                     r["t2"].update(cross=[])))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--params", str(f), "check"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    (root / df["image"][inside]).unlink()
    assert cli.main(["--params", str(f), "check"]) == 2
    err = capsys.readouterr().err
    assert f"row {inside + 2} ({df['image'][inside]}): file missing" in err and "data.limit=10 sample" in err, err
    assert len(err.strip().splitlines()) == 1


def test_the_parameters_box_shows_the_run_once_folded_and_only_its_datasets():
    """Issue 25 item 5: a notebook's params box (ParamsView's HTML) is one folded <details>, and per-dataset
    settings list the run's datasets only, not the /path/to placeholders of datasets the run does not use."""
    from nriqa_lib.core.params import load_params
    from nriqa_lib.pipeline.registry import view
    P = view(load_params(str(REPO / "params.yaml")), "data_overview")
    html = P._repr_html_()
    assert html.startswith("<details><summary>Parameters of this run") and html.count("<details>") == 1
    assert "/path/to" not in html and "koniq10k" not in html
    assert "'clive': '../shared/datasets/clive'" in html.replace("&#x27;", "'")
    assert set(P.data.roots) > {"synthetic", "clive"}          # the stage itself still reads every root
