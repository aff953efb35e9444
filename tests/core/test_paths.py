"""nriqa_lib.core.paths and core.workspace: where each stage reads and writes, inside and outside DVC's exp copies."""
from pathlib import Path

from nriqa_lib.core import paths, workspace

REPO = Path(__file__).resolve().parents[2]


def test_the_package_root_is_the_repository():
    assert workspace.PACKAGE_ROOT == REPO
    assert (workspace.PACKAGE_ROOT / "dvc.yaml").is_file()


def test_stage_folders_are_the_documented_ones():
    assert paths.splits_path("clive") == Path("splits/clive.csv")
    assert paths.features_dir("clive", "lite0") == Path("features/clive/lite0")
    assert paths.heads_dir("clive", "lite0") == Path("results/heads/clive/lite0")
    assert paths.cross_dir("koniq", "clive", "lite0") == Path("results/cross/koniq__clive/lite0")
    assert paths.zeroshot_dir("clive") == Path("results/zeroshot/clive")
    assert paths.finetune_ckpt("abc", 3) == Path("cache/finetune/abc/split_003.pt")


def test_inside_a_dvc_experiment_copy_paths_and_caches_mean_the_users_repository(tmp_path, monkeypatch):
    user = tmp_path / "repo"
    copy = user / ".dvc" / "tmp" / "exps" / "run" / "abc"
    copy.mkdir(parents=True)
    (user / "data").mkdir()
    assert workspace.origin_root(copy) == user
    assert workspace.origin_root(user) is None
    assert workspace.repo_path("data", base=copy) == (user / "data").resolve()   # absent in the copy: the user's
    (copy / "data").mkdir()
    assert workspace.repo_path("data", base=copy) == (copy / "data").resolve()   # present in the copy: its own
    monkeypatch.chdir(copy)
    assert workspace.cache_dir("features") == user / "cache" / "features"
    monkeypatch.chdir(user)
    assert workspace.cache_dir("features") == Path("cache/features")
