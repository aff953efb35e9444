"""T5's input policies (beyond P1): for each backbone and policy, features (content-addressed cache, like every
feature set) and the heads on the dataset's splits, the forward cost counted per image and the speed measured.
Policies: squash, center_crop, multi_crop (features.transforms.build_transform), squash_<N> (the backbone built for
N px), native (the image as it is: CNNs, dynamic-size ViTs), grid (MA-CLIP's 224 views, averaged)."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import pandas as pd

from ..core.config import T3, Train
from ..data.manifest import Manifest

__all__ = ["policy_spec", "run_policies", "dataset_cost", "measured_speed"]


def policy_spec(policy: str) -> tuple[int | None, str, bool]:
    """policy -> (image size to build the backbone for, build_transform's test_time, any-size input)."""
    if policy.startswith("squash_"):
        return int(policy.split("_")[1]), "squash", False
    return None, policy, policy in ("native", "grid")


def run_policies(man: Manifest, splits: pd.DataFrame, dataset: str, backbones: Sequence[str], policies: Sequence[str],
                 heads: Sequence[str], train: Train, t3: T3, build: Callable, batch_size: int, chunk_size: int,
                 jpeg_draft: float, log: Callable[[str], None] = print
                 ) -> tuple[dict[tuple[str, str], pd.DataFrame], list[dict], dict[str, dict]]:
    """For every backbone x policy (in order): the heads' predictions, the counted cost (:func:`dataset_cost`) and
    the measured speed (:func:`measured_speed`). ``build(name, image_size, dynamic_size)`` returns the backbone (the
    stage builds it as the params say). Returns ({(backbone, policy): predictions}, cost rows, timing)."""
    from ..backbones.models import forward_gflops
    from ..features.decode import load_image
    from ..extraction.extract import extract_features
    from ..features.transforms import build_transform
    from .protocol import mos_of, run_heads
    from ..core.progress import Progress
    preds, cost, timing = {}, [], {}
    bar = Progress(len(backbones) * len(policies), f"T5 on {dataset}", "policy", every=0, stream=_Log(log))
    for bname in backbones:
        for policy in policies:
            size, tt, dynamic = policy_spec(policy)
            bb = build(bname, size, dynamic)
            one_by_one = policy in ("native", "grid")        # image sizes (and view counts) differ
            t = time.time()
            fs = extract_features(bb, man, test_time=tt, batch_size=1 if one_by_one else batch_size,
                                  chunk_size=chunk_size, progress=False, jpeg_draft=jpeg_draft)
            dt = time.time() - t
            preds[(bname, policy)], _ = run_heads(fs, mos_of(man, fs.images), splits, list(heads), train, t3, dataset)
            c = dataset_cost(bb, man, tt, forward_gflops, build_transform)
            cost.append({"backbone": bname, "policy": policy, **c})
            # one image at a time (native sizes, view grids) is slow on a CPU: 32 such images took 40 s (native)
            # and 79 s (grid) for ResNet-152 in the smoke profile, so those policies time 8
            speed = measured_speed(bb, man, tt, build_transform, load_image, one_by_one, batch_size,
                                   sample=8 if one_by_one else 32)
            timing[f"{bname}/{policy}"] = {"pipeline_seconds": round(dt, 2), "cached": dt < 0.5, **speed}
            bar.update(note=f"{bname}/{policy}: {fs.features.shape}, {c['gflops_per_image']:.2f} GFLOP/image (mean "
                            f"over the dataset), {speed['images_per_s']:.1f} img/s measured on {speed['sample']} images")
    return preds, cost, timing


class _Log:
    """A file-like ``write`` onto a ``log(line)`` callable (Progress prints to a stream)."""
    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def write(self, text: str) -> None:
        if text.strip():
            self.log(text.rstrip("\n"))

    def flush(self) -> None:
        pass


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
