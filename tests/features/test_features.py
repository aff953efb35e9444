import numpy as np
import pytest
import torch

from conftest import make_image_dataset, write_manifest
from nriqa_lib.backbones.models import create_backbone
from nriqa_lib.data.manifest import ManifestError, load_dataset
from nriqa_lib.features.transforms import build_transform
from nriqa_lib.extraction.cache import cache_key
from nriqa_lib.extraction.extract import extract_features
from nriqa_lib.features.sets import load_feature_set, save_feature_set

pytestmark = pytest.mark.xdist_group("features")     # one worker builds the module fixture (scripts/test.sh)


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "root"
    df = make_image_dataset(root, n=10, size=(80, 60))
    mdir = tmp_path / "m"
    write_manifest(mdir, "toy", df)
    return load_dataset("toy", {"toy": str(root)}, manifest_dir=mdir)


@pytest.fixture(scope="module")
def bb():
    return create_backbone("tf_efficientnet_lite0", pretrained=False)


class Counting(torch.nn.Module):
    """Wraps a backbone and counts the images it is asked to embed."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, 0
        self.preprocess, self.name, self.dim = inner.preprocess, inner.name, inner.dim

    def identity(self):
        return self.inner.identity()

    def forward(self, x):
        self.seen += x.shape[0]
        return self.inner(x)


def test_features_match_a_bare_forward_and_cache_hits(toy, bb, tmp_path):
    fs = extract_features(bb, toy, batch_size=4, cache_dir=tmp_path / "c", progress=False)
    assert fs.features.shape == (10, bb.dim) and fs.images == list(toy.table["image"])
    tf = build_transform(bb.preprocess, "squash")
    from PIL import Image
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in toy.paths()[:3]])
    with torch.inference_mode():
        ref = bb(x).numpy()
    assert np.allclose(fs.features[:3], ref, atol=1e-4)
    counting = Counting(bb)
    again = extract_features(counting, toy, cache_dir=tmp_path / "c", progress=False)
    assert counting.seen == 0 and np.array_equal(again.features, fs.features)     # read from the cache
    save_feature_set(fs, tmp_path / "out")
    loaded = load_feature_set(tmp_path / "out")
    assert np.array_equal(loaded.features, fs.features) and loaded.images == fs.images


def test_resume_after_interruption(toy, bb, tmp_path):
    full = extract_features(bb, toy, chunk_size=3, cache_dir=tmp_path / "full", progress=False)
    counting = Counting(bb)
    with pytest.raises(InterruptedError):
        extract_features(counting, toy, chunk_size=3, cache_dir=tmp_path / "c", progress=False, max_chunks=2)
    assert counting.seen == 6
    counting.seen = 0
    resumed = extract_features(counting, toy, chunk_size=3, cache_dir=tmp_path / "c", progress=False)
    assert counting.seen == 4                                    # only the 2 unfinished chunks
    assert np.array_equal(resumed.features, full.features)


def test_cache_key_tracks_what_changes_numbers(toy, bb):
    k1, ident = cache_key(bb, toy, "squash")
    assert k1 != cache_key(bb, toy, "center_crop")[0]
    other = create_backbone("tf_efficientnet_lite0", pretrained=False, seed=1)
    assert k1 != cache_key(other, toy, "squash")[0]
    assert ident["manifest"] == toy.content_hash and "preprocess" in ident


@pytest.mark.parametrize("mode,shape", [("squash", (3, 224, 224)), ("center_crop", (3, 224, 224)),
                                        ("multi_crop", (5, 3, 224, 224))])
def test_test_time_views(mode, shape, bb, toy, tmp_path):
    from PIL import Image
    x = build_transform(bb.preprocess, mode)(Image.open(toy.paths()[0]).convert("RGB"))
    assert tuple(x.shape) == shape
    if mode == "multi_crop":
        fs = extract_features(bb, toy, test_time=mode, batch_size=2, cache_dir=tmp_path / "mc", progress=False)
        assert fs.features.shape == (10, bb.dim) and np.isfinite(fs.features).all()


def test_corrupt_image_named_during_extraction(toy, bb, tmp_path):
    bad = toy.paths()[4]
    bad.write_bytes(b"not an image")
    with pytest.raises(ManifestError, match="img_004.png"):
        extract_features(bb, toy, cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("features.npy"))


def test_resume_with_another_chunk_size_never_stitches(toy, bb, tmp_path):
    """Interrupted with chunk_size 3, resumed with 4: 10 rows in manifest order, equal to a clean run."""
    full = extract_features(bb, toy, chunk_size=5, cache_dir=tmp_path / "full", progress=False)
    with pytest.raises(InterruptedError):
        extract_features(bb, toy, chunk_size=3, cache_dir=tmp_path / "c", progress=False, max_chunks=2)
    resumed = extract_features(bb, toy, chunk_size=4, cache_dir=tmp_path / "c", progress=False)
    assert resumed.features.shape == (10, bb.dim)
    assert np.array_equal(resumed.features, full.features)
    assert not list((tmp_path / "c").rglob("chunk_*.npy"))


def test_a_broken_cache_entry_is_recomputed_not_used(toy, bb, tmp_path):
    fs = extract_features(bb, toy, cache_dir=tmp_path / "c", progress=False)
    entry = tmp_path / "c" / fs.key
    np.save(entry / "features.npy", np.vstack([fs.features, fs.features[:3]]))      # 13 rows for 10 images
    again = extract_features(bb, toy, cache_dir=tmp_path / "c", progress=False)
    assert np.array_equal(again.features, fs.features)
    (entry / "images.txt").write_text("\n".join(reversed(fs.images)) + "\n")      # another row order
    assert np.array_equal(extract_features(bb, toy, cache_dir=tmp_path / "c", progress=False).features, fs.features)


def test_two_processes_share_one_cache_entry(toy, tmp_path):
    """Both fill the same key at once: one waits on the file lock, both succeed, no stray chunk files."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent(f"""
        import numpy as np, torch
        torch.set_num_threads(1)
        from nriqa_lib.backbones.models import create_backbone
        from nriqa_lib.data.manifest import load_dataset
        from nriqa_lib.extraction.extract import extract_features
        m = load_dataset("toy", {{"toy": {str(toy.root)!r}}}, manifest_dir={str(tmp_path / 'm')!r})
        fs = extract_features(create_backbone("tf_efficientnet_lite0", pretrained=False), m, chunk_size=2,
                              cache_dir={str(tmp_path / 'shared')!r}, progress=False)
        np.save(__import__("sys").argv[1], fs.features)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{i}.npy")]) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy")
    assert a.shape == (10, 1280) and np.array_equal(a, b)
    assert not list((tmp_path / "shared").rglob("chunk_*")) and not list((tmp_path / "shared").rglob(".*.npy"))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image
    from nriqa_lib.features.decode import load_image
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")               # a 16-bit greyscale PNG
    with Image.open(tmp_path / "ramp16.png") as im:
        assert im.mode.startswith("I")
    got = np.asarray(load_image(tmp_path / "ramp16.png"))
    want = np.round(ramp / 257.0).astype(np.uint8)
    assert got.shape == (8, 64, 3) and np.array_equal(got[..., 0], want) and np.array_equal(got[..., 2], want)
    assert (got == 255).mean() < 0.05                                   # clipping made 99.6% of the pixels white
