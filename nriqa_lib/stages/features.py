"""Stage ``features@<dataset>``: features/<dataset>/<backbone>/ for every backbone (content-addressed cache)."""
from __future__ import annotations

import sys
import time

from ..backbones import create_backbone
from ..data.manifest import load_dataset
from ..features import extract_features, save_feature_set
from ..paths import features_dir

PARAMS = ("data.roots", "features")


def run(p, dataset: str, backbones: list[str] | None = None) -> None:
    m = load_dataset(dataset, p.data.roots)          # validates files (existence, sha256, decoding) first
    for backbone in backbones or p.features.backbones:
        bb = create_backbone(backbone, weights=p.features.weights.get(backbone))
        t = time.time()
        fs = extract_features(bb, m, test_time=p.features.test_time, batch_size=p.features.batch_size,
                              threads=p.features.threads, chunk_size=p.features.chunk_size,
                              progress=sys.stderr.isatty())
        save_feature_set(fs, features_dir(dataset, backbone))
        print(f"{backbone} on {dataset}: {fs.features.shape} in {time.time() - t:.1f}s (key {fs.key})")
