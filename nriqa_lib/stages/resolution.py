"""Stage ``resolution@<dataset>`` (T5): for every backbone of ``t5.backbones`` and every input policy of
``t5.policies``, features (content-addressed cache, like every feature set) and the heads of ``t5.heads`` on the
dataset's splits (for the datasets of ``t5.datasets``; the others get a status.json saying so):
results/resolution/<dataset>/<backbone>/<policy>/predictions.csv, plus cost.csv (forward
GFLOPs per image, counted, mean over the dataset) and results/timing/resolution_<dataset>.json (images/s,
measured on a fixed sample without the cache: outside DVC's outputs and every table, so a rerun reproduces
every tracked byte). The policies and their cost: :mod:`nriqa_lib.training.resolution`."""
from __future__ import annotations

import json

from ..core.io import atomic_path, atomic_write_text
from ..core.paths import resolution_dir, splits_path, timing_dir, write_predictions
from ..pipeline.spec import BACKBONE, D, ComputeStage

STAGE = ComputeStage(name="resolution", module=__name__, matrix=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "data.exif_transpose",
                      "features.backbones", "features.weights", "features.pretrained", "features.image_size",
                      "features.batch_size", "features.threads", "features.chunk_size", "features.jpeg_draft",
                      "train", "t3", "t5"),
              desc="T5: every input policy of t5.policies, features + heads (t5.datasets only)",
              deps=("data_manifests", str(splits_path(D)), "results/weights.json"), outs=(str(resolution_dir(D)),),
              options=(BACKBONE,), writes=("results/resolution", "cache/features"))


def t5_backbones(p) -> list[str]:
    from ..backbones.registry import pretrained
    return list(p.t5.backbones) or pretrained(p.features.backbones)


def run(p, dataset: str, backbones: list[str] | None = None) -> None:
    out = resolution_dir(dataset)
    out.mkdir(parents=True, exist_ok=True)
    if dataset not in p.t5.datasets:
        atomic_write_text(out / "status.json", json.dumps({"note": f"{dataset} is not in t5.datasets"}) + "\n")
        print(f"T5: {dataset} is not in t5.datasets, nothing to do")
        return
    # the heavy imports only when there is work (datasets outside t5.datasets are a no-op)
    import pandas as pd
    import torch

    from ..core.paths import load_splits
    from ..training.resolution import run_policies
    from .models import backbone
    from .datasets import open_dataset
    torch.set_num_threads(p.features.threads)
    preds, cost, timing = run_policies(
        open_dataset(p, dataset, decode=True, pixels=True), load_splits(splits_path(dataset)), dataset,
        backbones or t5_backbones(p), p.t5.policies, p.t5.heads, p.train, p.t3,
        lambda name, size, dynamic: backbone(p, name, image_size=size, dynamic_size=dynamic), p.features.batch_size,
        p.features.chunk_size, p.features.jpeg_draft)
    for (bname, policy), pred in preds.items():
        d = out / bname / policy
        d.mkdir(parents=True, exist_ok=True)
        write_predictions(pred, d / "predictions.csv")
    with atomic_path(out / "cost.csv") as tmp:
        pd.DataFrame(cost).to_csv(tmp, index=False, lineterminator="\n")
    # measured speeds vary run to run (~15% on this VM): outside the stage's DVC outputs, so a fresh
    # `dvc repro` reproduces every tracked file (results/timing/ is neither a DVC output nor in git)
    tdir = timing_dir()
    tdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(tdir / f"resolution_{dataset}.json", json.dumps(timing, indent=1, sort_keys=True) + "\n")
