"""Decoding for feature extraction: one decode per image for all backbones of a pass, and JPEG draft mode
(decode at 1/2, 1/4, 1/8 scale) only where the image is much larger than the view."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nriqa_lib.extraction import cache, extract
from nriqa_lib.features import decode
from conftest import write_manifest
from nriqa_lib.backbones.models import create_backbone
from nriqa_lib.data.manifest import load_dataset, sha256_file


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """A smooth, photo-like test image (low-frequency colour waves + mild noise), so JPEG behaves as on photos."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    chans = [np.sin(2 * np.pi * (g.uniform(1, 4) * xx + g.uniform(1, 4) * yy) + g.uniform(0, 6)) for _ in range(3)]
    arr = (np.stack(chans, -1) * 90 + 128 + g.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr)


@pytest.fixture
def mixed(tmp_path):
    """2 large JPEGs, 2 small JPEGs, 1 large PNG."""
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, (w, h, fmt) in enumerate([(1600, 1200, "JPEG"), (1200, 1600, "JPEG"), (300, 200, "JPEG"),
                                     (200, 300, "JPEG"), (1600, 1200, "PNG")]):
        rel = f"images/img_{i}.{'jpg' if fmt == 'JPEG' else 'png'}"
        _photo(w, h, i).save(root / rel, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        rows.append({"image": rel, "mos": i / 4, "mos_raw": 0.0, "group": f"g{i}", "sha256": sha256_file(root / rel)})
    write_manifest(tmp_path / "m", "mixed", pd.DataFrame(rows))
    return load_dataset("mixed", {"mixed": str(root)}, manifest_dir=tmp_path / "m", hash_cache=tmp_path / "sha")


@pytest.mark.parametrize("request_wh", [(448, 448), (224, 224), (120, 120), (700, 500), (1600, 1200), (100, 900),
                                        (1700, 1300), (2000, 100)])
def test_draft_scale_is_pils_choice(tmp_path, request_wh):
    p = tmp_path / "a.jpg"
    _photo(1600, 1200, 0).save(p, quality=90)
    s = decode.draft_scale((1600, 1200), request_wh)
    with Image.open(p) as im:
        im.draft("RGB", request_wh)
        assert im.size == (-(-1600 // s), -(-1200 // s))
    assert decode.load_image(p, s).size == (-(-1600 // s), -(-1200 // s))


def test_draft_request_per_policy():
    pp = create_backbone("random_tf_efficientnet_lite0").preprocess          # 224 px, crop_pct 0.875
    assert decode.draft_request((1600, 1200), pp, "squash", 2.0) == (448, 448)
    assert decode.draft_request((1600, 1200), pp, "center_crop", 2.0) == (683, 512)  # short side 2 x 256
    assert decode.draft_request((1600, 1200), pp, "grid", 2.0) is None
    assert decode.draft_request((1600, 1200), pp, "native", 2.0) is None
    assert decode.draft_request((1600, 1200), pp, "squash", 0) is None
    assert decode.draft_scale((1600, 1200), (448, 448)) == 2 and decode.draft_scale((500, 500), (448, 448)) == 1
    assert decode.draft_scale((300, 200), (448, 448)) == 1                          # smaller than the request


def test_one_pass_decodes_each_image_once_and_equals_each_backbone_alone(mixed, tmp_path, monkeypatch):
    a = create_backbone("random_tf_efficientnet_lite0", seed=0)
    b = create_backbone("random_tf_efficientnet_lite0", seed=1, image_size=96)
    # full decodes (jpeg_draft 0): with drafting, backbones of two sizes ask for two drafts of a large JPEG
    alone = [extract.extract_features(x, mixed, batch_size=2, chunk_size=3, cache_dir=tmp_path / f"alone{i}",
                                progress=False, jpeg_draft=0.0) for i, x in enumerate((a, b))]
    calls = []
    real = decode.load_image
    monkeypatch.setattr(decode, "load_image", lambda p, draft=1, exif=True: calls.append((p, draft)) or real(p, draft, exif))
    both = extract.extract_many([a, b], mixed, batch_size=2, chunk_size=3, cache_dir=tmp_path / "both", progress=False,
                          jpeg_draft=0.0)
    assert len(calls) == len(mixed.table)                                  # not once per backbone
    for x, y in zip(alone, both):
        assert np.array_equal(x.features, y.features) and x.key == y.key   # bit-identical, same cache entry
    # a pass where one backbone is cached computes only the other one
    calls.clear()
    c = create_backbone("random_tf_efficientnet_lite0", seed=2)
    extract.extract_many([a, c], mixed, batch_size=2, chunk_size=3, cache_dir=tmp_path / "both", progress=False,
                   jpeg_draft=0.0)
    assert len(calls) == len(mixed.table)


def test_draft_only_where_the_image_is_much_larger_than_the_view(mixed, tmp_path, monkeypatch):
    bb = create_backbone("random_tf_efficientnet_lite0", image_size=64)    # needs >= 128 px at margin 2
    full = extract.extract_features(bb, mixed, batch_size=2, cache_dir=tmp_path / "full", progress=False, jpeg_draft=0.0)
    calls = []
    real = decode.load_image
    monkeypatch.setattr(decode, "load_image", lambda p, draft=1, exif=True: calls.append(draft) or real(p, draft, exif))
    drafted = extract.extract_features(bb, mixed, batch_size=2, cache_dir=tmp_path / "draft", progress=False,
                                 jpeg_draft=2.0)
    # 1600 x 1200 JPEGs: 1600 // 128 = 12, 1200 // 128 = 9 -> 1/8; 300 x 200: 200 // 128 = 1 -> full; PNG: full
    assert calls == [8, 8, 1, 1, 1]
    assert drafted.key != full.key and drafted.meta["jpeg_draft"] == 2.0
    assert np.array_equal(drafted.features[2:], full.features[2:])           # no draft: identical rows
    d = drafted.features[:2] - full.features[:2]
    rel = np.linalg.norm(d, axis=1) / np.linalg.norm(full.features[:2], axis=1)
    assert 0 < rel.max() < 0.05                                              # drafted rows: close, not equal
    # a dataset where nothing is drafted keeps its key (and so its cached features)
    small = type(mixed)(mixed.name, mixed.table.iloc[2:4].reset_index(drop=True), mixed.root, mixed.card)
    assert cache.cache_key(bb, small, "squash", jpeg_draft=2.0)[0] == cache.cache_key(bb, small, "squash", jpeg_draft=0.0)[0]
