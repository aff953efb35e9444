"""Stage ``cross``: train on one dataset, predict all of another (every t2.cross pair of configured datasets,
every pretrained backbone): results/cross/<source>__<target>/<backbone>/predictions.csv."""
from __future__ import annotations

import time
from pathlib import Path

from .datasets import open_dataset
from ..core.paths import cross_dir, features_dir, splits_path
from ..pipeline.spec import ComputeStage


STAGE = ComputeStage(name="cross", module=__name__,
              params=("data.datasets", "data.roots", "data.manifests", "data.limit", "data.limit_seed",
                      "features.backbones", "features.threads", "train", "t2.heads", "t2.reference", "t2.cross", "t3"),
              desc="train on one dataset, predict all of another (t2.cross)",
              deps=("data_manifests", str(features_dir()), str(splits_path("").parent)), outs=(str(cross_dir()),),
              writes=(str(cross_dir()),))


def run(p) -> None:
    # the heavy imports (torch, CLIP, plots) here, not at the top: every CLI call imports every stage's module (the
    # registry), and a stage that needs none of them (splits, a notebook) starts ~3 s sooner (issue 34)
    import torch
    from ..backbones.registry import pretrained
    from ..core.paths import load_splits
    from ..features.sets import load_feature_set
    from ..core.paths import cross_dir, features_dir, splits_path, write_predictions
    from ..core.progress import Progress
    from ..training.protocol import cross_dataset, cross_heads, mos_of
    torch.set_num_threads(p.features.threads)
    Path("results/cross").mkdir(parents=True, exist_ok=True)
    pairs = [(a, b) for a, b in p.t2.cross if a in p.data.datasets and b in p.data.datasets]
    backbones = pretrained(p.features.backbones)
    bar = Progress(len(pairs) * len(backbones), "cross", "backbone", every=0)
    for a, b in pairs:
        if not backbones:
            continue
        man_a, man_b, splits_a = open_dataset(p, a), open_dataset(p, b), load_splits(splits_path(a))
        for bb in backbones:
            t = time.time()
            fa, fb = load_feature_set(features_dir(a, bb)), load_feature_set(features_dir(b, bb))
            pred = cross_dataset(fa, mos_of(man_a, fa.images), splits_a, fb, mos_of(man_b, fb.images),
                                 cross_heads(p.t2), p.train, p.t3, a)
            write_predictions(pred, cross_dir(a, b, bb) / "predictions.csv")
            bar.update(note=f"{a}->{b} on {bb}: {pred['head'].nunique()} heads x {pred['split'].nunique()} splits "
                            f"in {time.time() - t:.1f}s")
    if not pairs:
        print("cross: no t2.cross pair with both datasets in data.datasets")
