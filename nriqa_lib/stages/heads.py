"""Stage ``heads@<dataset>``: every head of every backbone on every split (results/heads/<dataset>/<backbone>/)."""
from __future__ import annotations

import time

from .datasets import open_dataset
from ..core.paths import features_dir, heads_dir, splits_path
from ..pipeline.spec import BACKBONE, D, ComputeStage


STAGE = ComputeStage(name="heads", module=__name__, matrix=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "features.backbones",
                      "features.threads", "train", "t1.head", "t2.heads", "t2.reference", "t3"),
              desc="every head of every backbone on every split",
              deps=("data_manifests", str(features_dir(D)), str(splits_path(D))), outs=(str(heads_dir(D)),),
              options=(BACKBONE,), writes=("results/heads",))


def run(p, dataset: str, backbones: list[str] | None = None) -> None:
    # the heavy imports (torch, CLIP, plots) here, not at the top: every CLI call imports every stage's module (the
    # registry), and a stage that needs none of them (splits, a notebook) starts ~3 s sooner (issue 34)
    import torch
    from ..core.paths import load_splits
    from ..features.sets import load_feature_set
    from ..core.paths import features_dir, heads_dir, splits_path
    from ..core.progress import Progress
    from ..training.protocol import heads_for, mos_of, run_heads, save_heads
    torch.set_num_threads(p.features.threads)
    manifest = open_dataset(p, dataset)
    splits = load_splits(splits_path(dataset))
    names = list(backbones or p.features.backbones)
    bar = Progress(sum(len(heads_for(b, p.t1, p.t2)) for b in names), f"heads on {dataset}", "head")
    for backbone in names:
        t = time.time()
        fs = load_feature_set(features_dir(dataset, backbone))
        pred, shares = run_heads(fs, mos_of(manifest, fs.images), splits, heads_for(backbone, p.t1, p.t2), p.train,
                                 p.t3, dataset, done=lambda h, b=backbone: bar.update(note=f"{b}/{h}"))
        save_heads(pred, shares, heads_dir(dataset, backbone))
        print(f"heads on {dataset}/{backbone}: {pred['head'].nunique()} specs x {pred['split'].nunique()} splits "
              f"in {time.time() - t:.1f}s")
