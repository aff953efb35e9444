"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) with random weights unless a test says otherwise."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import nriqa_lib  # noqa: E402,F401  (pins torch's CPU kernels before torch computes anything)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLIVE_ROOT = SHARED / "datasets" / "clive"
LABELS = SHARED / "labels"

needs_shared = pytest.mark.skipif(not (CLIVE_ROOT / "clive.csv").is_file() or not LABELS.is_dir(),
                                  reason="../shared (CLIVE images and label tables) not beside the checkout")

# the machine's 2 cores: all of them for one pytest process, one each under pytest-xdist's 2 workers (scripts/test.sh)
THREADS = max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
torch.set_num_threads(THREADS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Refuse to run when pytest-xdist's ``--dist loadgroup`` did not group (scripts/test.sh relies on it: a module
    fixture built once per group). pytest 9.2.0 derives ``nodeid`` from ``_id``, so xdist 3.8's ``item._nodeid = ...@group``
    did nothing and each group's fixtures were built on both workers (the kill study twice: ~60 s); pinned 9.1.1."""
    if not getattr(config.option, "loadgroup", False):
        return
    lost = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid.rsplit("]", 1)[-1]]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup did not group {len(lost)} test(s), e.g. {lost[0]}: this pytest "
                                f"(pytest {pytest.__version__}) and pytest-xdist do not work together; use the "
                                f"versions of requirements-lock.txt")


@pytest.fixture(autouse=True)
def _worker_threads():
    """Every test starts with the worker's share of the cores: a stage run in process (``cli.main``) sets torch's
    threads to its ``features.threads`` (2) for the rest of the worker's life, 2 workers x 2 threads on 2 cores.
    (With the ungrouped fixtures above it came with a suite of 926 s; 528 s after both fixes, not measured apart.)"""
    if torch.get_num_threads() != THREADS:
        torch.set_num_threads(THREADS)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make_image_dataset(root: Path, n: int = 12, size=(64, 48), seed: int = 0):
    """n small random RGB PNGs under root/images and a manifest DataFrame for them (groups of 3)."""
    import pandas as pd
    from PIL import Image
    from nriqa_lib.data.manifest import sha256_file
    g = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        arr = (g.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        rel = f"images/img_{i:03d}.png"
        Image.fromarray(arr).save(root / rel)
        rows.append({"image": rel, "mos": float(g.random()), "mos_raw": 0.0, "group": f"g{i // 3}",
                     "sha256": sha256_file(root / rel)})
    return pd.DataFrame(rows)


def params_file(tmp_path: Path, mutate) -> Path:
    """The committed params.yaml with ``mutate(raw)`` applied, written to tmp_path/params.yaml."""
    import yaml
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(raw)
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


def write_manifest(mdir: Path, name: str, df) -> Path:
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / f"{name}.yaml").write_text(f"dataset: {name}\n")
    df.to_csv(mdir / f"{name}.csv", index=False)
    return mdir / f"{name}.csv"


TINY_CLIP = {
    "tiny-rn": {"embed_dim": 32, "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
    "tiny-vit": {"embed_dim": 32, "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "patch_size": 32,
                                                 "head_width": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
}


@pytest.fixture(params=["tiny-rn", "tiny-vit"])
def tiny_clip(request):
    """A small randomly initialised open_clip model: RN50-like (attention pool) or ViT-like."""
    import open_clip
    from open_clip.factory import _MODEL_CONFIGS
    _MODEL_CONFIGS.update(TINY_CLIP)
    torch.manual_seed(0)
    model = open_clip.create_model(request.param).eval()
    # random CLIP weights give near-identical views; perturb the positional embedding so 'drop' matters
    return model, open_clip.get_tokenizer("RN50"), request.param


BB = "tf_efficientnet_lite0"      # the toy tree's backbone (and its random_ control)


def make_tree(tmp_path, monkeypatch):
    """Two toy datasets: 'toya' (official split with a `set` column), 'toyb' (plain); features that carry the MOS
    (made up: no backbone runs). Returns (root, Params) for the protocol, stage and table tests."""
    from nriqa_lib.core.config import Params
    from nriqa_lib.features.sets import FeatureSet, save_feature_set
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NRIQA_MANIFEST_DIR", str(tmp_path / "m"))
    g = np.random.default_rng(0)
    for name, n in (("toya", 60), ("toyb", 45)):
        df = make_image_dataset(tmp_path / name, n=n, size=(16, 16), seed=len(name) + n)
        if name == "toya":
            df["set"] = np.where(np.arange(n) < 36, "train", np.where(np.arange(n) < 45, "val", "test"))
        write_manifest(tmp_path / "m", name, df)
        for bb in (BB, f"random_{BB}", f"random_{BB}_init1", f"random_{BB}_init2"):    # the control at 3 inits
            X = np.c_[df["mos"].to_numpy()[:, None] * np.ones((1, 4)), g.normal(size=(n, 12))].astype(np.float32)
            X[:, :4] += 0.3 * g.normal(size=(n, 4))
            save_feature_set(FeatureSet(X, list(df["image"]), {"key": "fake"}), tmp_path / "features" / name / bb)
    p = Params()
    p.data.datasets = ["toya", "toyb"]
    p.data.roots = {"toya": str(tmp_path / "toya"), "toyb": str(tmp_path / "toyb")}
    p.features.backbones = [BB, f"random_{BB}"]
    p.features.control_inits = 3
    p.features.threads = THREADS               # a stage's share of the cores under the test workers
    p.train.epochs, p.train.hidden, p.train.batch_size, p.train.lr = 3, 16, 8, 3e-3
    p.t2.heads, p.t2.reference = ["B", "sigmoid"], "B"
    p.t3.candidates = ["relu", "sigmoid"]
    p.stats.n_boot = 200
    p.t5.datasets, p.t5.backbones, p.t5.policies = ["toyb"], [BB], ["squash", "center_crop", "squash_96"]
    return tmp_path, p


def make_splits_files(p, scheme):
    """Write splits/<dataset>.csv for every dataset of ``p`` (4 splits of ``scheme(dataset)``)."""
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.data.splits import make_splits, save_splits
    from nriqa_lib.core.paths import splits_path
    for d in p.data.datasets:
        m = load_dataset(d, p.data.roots, decode=False)
        save_splits(make_splits(m.table, scheme(d), n_splits=4), splits_path(d))


def library_modules(skip=()):
    """Every module of nriqa_lib below the stages and the pipeline machinery (the library that must not see params),
    imported, except ``skip``."""
    import importlib
    import pkgutil
    for m in pkgutil.walk_packages(nriqa_lib.__path__, "nriqa_lib."):
        if not m.name.startswith(("nriqa_lib.stages", "nriqa_lib.pipeline")) and m.name not in skip:
            yield importlib.import_module(m.name)


def module_members(mod):
    """(name, object) of each function and class ``mod`` defines itself (not the names it imports)."""
    import inspect
    for name, obj in vars(mod).items():
        if getattr(obj, "__module__", None) == mod.__name__ and (inspect.isfunction(obj) or inspect.isclass(obj)):
            yield name, obj
