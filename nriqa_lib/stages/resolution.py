"""Stage ``resolution@<dataset>`` (T5): for every backbone of ``t5.backbones`` and every input policy of
``t5.policies``, features (content-addressed cache, like every feature set) and the heads of ``t5.heads`` on the
dataset's splits (for the datasets of ``t5.datasets``; the others get a status.json saying so):
results/resolution/<dataset>/<backbone>/<policy>/predictions.csv, plus cost.csv (forward
GFLOPs per image, counted, mean over the dataset) and results/timing/resolution_<dataset>.json (images/s,
measured on a fixed sample without the cache: outside DVC's outputs and every table, so a rerun reproduces
every tracked byte). Policies: squash, center_crop, multi_crop (features.build_transform), squash_<N> (the backbone
built for N px), native (the image as it is: CNNs, dynamic-size ViTs), grid (MA-CLIP's 224 views, averaged)."""
from __future__ import annotations

import json
import time

from ..core.io import atomic_path, atomic_write_text
from ..core.paths import resolution_dir, splits_path, timing_dir
from .registry import BACKBONE, D, Stage

STAGE = Stage(name="resolution", module=__name__, matrix=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "data.exif_transpose",
                      "features.backbones", "features.weights", "features.pretrained", "features.image_size",
                      "features.batch_size", "features.threads", "features.chunk_size", "features.jpeg_draft",
                      "train", "t3", "t5"),
              desc="T5: every input policy of t5.policies, features + heads (t5.datasets only)",
              deps=("data_manifests", f"splits/{D}.csv", "results/weights.json"), outs=(f"results/resolution/{D}",),
              options=(BACKBONE,), writes=("results/resolution", "cache/features"))


def policy_spec(policy: str) -> tuple[int | None, str, bool]:
    """policy -> (image size to build the backbone for, build_transform's test_time, any-size input)."""
    if policy.startswith("squash_"):
        return int(policy.split("_")[1]), "squash", False
    return None, policy, policy in ("native", "grid")


def t5_backbones(p) -> list[str]:
    from ..backbones import pretrained
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

    from . import backbone, open_dataset
    from ..data.splits import load_splits
    from ..estimate import forward_gflops
    from ..features.transforms import build_transform
    from ..features.extract import extract_features
    from ..features.decode import load_image
    from ..training.protocol import mos_of, run_heads
    torch.set_num_threads(p.features.threads)
    man = open_dataset(p, dataset, decode=True, pixels=True)
    splits = load_splits(splits_path(dataset))
    cost, timing = [], {}
    for bname in backbones or t5_backbones(p):
        for policy in p.t5.policies:
            size, tt, dynamic = policy_spec(policy)
            bb = backbone(p, bname, image_size=size, dynamic_size=dynamic)
            one_by_one = policy in ("native", "grid")        # image sizes (and view counts) differ
            t = time.time()
            fs = extract_features(bb, man, test_time=tt, batch_size=1 if one_by_one else p.features.batch_size,
                                  chunk_size=p.features.chunk_size, progress=False,
                                  jpeg_draft=p.features.jpeg_draft)
            dt = time.time() - t
            pred, _ = run_heads(fs, mos_of(man, fs.images), splits, list(p.t5.heads), p.train, p.t3, dataset)
            d = out / bname / policy
            d.mkdir(parents=True, exist_ok=True)
            with atomic_path(d / "predictions.csv") as tmp:
                pred.to_csv(tmp, index=False, float_format="%.7g", lineterminator="\n")
            c = dataset_cost(bb, man, tt, forward_gflops, build_transform)
            cost.append({"backbone": bname, "policy": policy, **c})
            # one image at a time (native sizes, view grids) is slow on a CPU: 32 such images took 40 s (native)
            # and 79 s (grid) for ResNet-152 in the smoke profile, so those policies time 8
            speed = measured_speed(bb, man, tt, build_transform, load_image, one_by_one, p.features.batch_size,
                                   sample=8 if one_by_one else 32)
            timing[f"{bname}/{policy}"] = {"pipeline_seconds": round(dt, 2), "cached": dt < 0.5,
                                           **speed}
            print(f"T5 {bname}/{policy} on {dataset}: {fs.features.shape}, {c['gflops_per_image']:.2f} GFLOP/image "
                  f"(mean over the dataset), {speed['images_per_s']:.1f} img/s measured on {speed['sample']} images")
    with atomic_path(out / "cost.csv") as tmp:
        pd.DataFrame(cost).to_csv(tmp, index=False, lineterminator="\n")
    # measured speeds vary run to run (~15% on this VM): outside the stage's DVC outputs, so a fresh
    # `dvc repro` reproduces every tracked file (results/timing/ is neither a DVC output nor in git)
    tdir = timing_dir()
    tdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(tdir / f"resolution_{dataset}.json", json.dumps(timing, indent=1, sort_keys=True) + "\n")


def dataset_cost(bb, man, test_time: str, forward_gflops, build_transform) -> dict:
    """Forward GFLOPs per image averaged over the whole dataset (counted with FlopCounterMode once per distinct
    input shape: image sizes read from the file headers, the policy's transform applied to a blank image of that
    size), the most common input size and the mean number of views."""
    from collections import Counter

    import torch
    from PIL import Image

    from ..features.decode import ORIENTATION
    sizes = Counter()
    for path in man.paths():
        with Image.open(path) as im:        # EXIF orientations 5-8 turn the image a quarter: width and height swap
            turned = man.exif_transpose and im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
            sizes[im.size[::-1] if turned else im.size] += 1
    per_shape: dict[tuple, float] = {}
    total = views = 0.0
    inputs = Counter()
    tf = build_transform(bb.preprocess, test_time)
    for size, n in sizes.items():
        x = tf(Image.new("RGB", size, (128, 128, 128)))
        x = x if x.dim() == 4 else x[None]
        g = 0.0
        for v in x:
            key = tuple(v.shape)
            if key not in per_shape:
                per_shape[key] = forward_gflops(bb, size=None, x=torch.zeros(1, *key))
            g += per_shape[key]
        total += n * g
        views += n * x.shape[0]
        inputs["x".join(map(str, x.shape[-2:]))] += n
    N = sum(sizes.values())
    return {"input": inputs.most_common(1)[0][0], "distinct_inputs": len(inputs), "views": round(views / N, 3),
            "gflops_per_image": round(total / N, 3)}


def measured_speed(bb, man, test_time: str, build_transform, load_image, one_by_one: bool, batch_size: int,
                   sample: int = 32) -> dict:
    """Images/s of decode + transform + forward on the first ``sample`` images of the manifest (8 for the policies
    that run one image at a time, 32 otherwise), never from the
    feature cache (the squash policy's features are usually cached by the features stage: timing that pipeline
    measures nothing)."""
    import torch
    tf = build_transform(bb.preprocess, test_time)
    paths = man.paths()[:sample]
    t = time.perf_counter()
    with torch.inference_mode():
        batch = []
        for path in paths:
            x = tf(load_image(path, exif=man.exif_transpose))
            if one_by_one or x.dim() == 4:
                bb(x if x.dim() == 4 else x[None])
                continue
            batch.append(x)
            if len(batch) == batch_size:
                bb(torch.stack(batch))
                batch = []
        if batch:
            bb(torch.stack(batch))
    dt = time.perf_counter() - t
    return {"sample": len(paths), "seconds": round(dt, 3), "images_per_s": round(len(paths) / dt, 1)}
