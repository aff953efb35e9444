"""Stage ``resolution@<dataset>`` (T5): for every backbone of ``t5.backbones`` and every input policy of
``t5.policies``, features (content-addressed cache, like every feature set) and the heads of ``t5.heads`` on the
dataset's splits (for the datasets of ``t5.datasets``; the others get a status.json saying so):
results/resolution/<dataset>/<backbone>/<policy>/predictions.csv, plus cost.csv (forward
GFLOPs per image, counted) and timing.json (images/s, measured: not part of any table, so tables stay
bit-identical). Policies: squash, center_crop, multi_crop (features.build_transform), squash_<N> (the backbone
built for N px), native (the image as it is: CNNs, dynamic-size ViTs), grid (MA-CLIP's 224 views, averaged)."""
from __future__ import annotations

import json
import time

from ..io import atomic_path, atomic_write_text
from ..paths import resolution_dir, splits_path

PARAMS = ("data.roots", "data.limit", "data.limit_seed", "features.backbones", "features.weights",
          "features.pretrained", "features.image_size", "features.batch_size", "features.threads",
          "features.chunk_size", "features.jpeg_draft", "train", "t3", "t5")


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

    from ..backbones import backbone_from_params
    from ..data.manifest import open_dataset
    from ..data.splits import load_splits
    from ..estimate import forward_gflops
    from ..features import build_transform, extract_features, load_image
    from ..protocol import run_heads
    torch.set_num_threads(p.features.threads)
    man = open_dataset(p, dataset, decode=True)
    splits = load_splits(splits_path(dataset))
    cost, timing = [], {}
    for bname in backbones or t5_backbones(p):
        for policy in p.t5.policies:
            size, tt, dynamic = policy_spec(policy)
            bb = backbone_from_params(p, bname, image_size=size, dynamic_size=dynamic)
            one_by_one = policy in ("native", "grid")        # image sizes (and view counts) differ
            t = time.time()
            fs = extract_features(bb, man, test_time=tt, batch_size=1 if one_by_one else p.features.batch_size,
                                  chunk_size=p.features.chunk_size, progress=False,
                                  jpeg_draft=p.features.jpeg_draft)
            dt = time.time() - t
            pred, _ = run_heads(p, dataset, bname, manifest=man, fs=fs, splits=splits, heads=list(p.t5.heads))
            d = out / bname / policy
            d.mkdir(parents=True, exist_ok=True)
            with atomic_path(d / "predictions.csv") as tmp:
                pred.to_csv(tmp, index=False, float_format="%.7g", lineterminator="\n")
            x = build_transform(bb.preprocess, tt)(load_image(man.paths()[0]))
            x = x if x.dim() == 4 else x[None]
            gf = sum(forward_gflops(bb, size=None, x=v[None]) for v in x)
            cost.append({"backbone": bname, "policy": policy, "input": "x".join(map(str, x.shape[-2:])),
                         "views": int(x.shape[0]), "gflops_per_image": round(gf, 3)})
            timing[f"{bname}/{policy}"] = {"seconds": round(dt, 2), "images_per_s": round(len(man.table) / dt, 1),
                                           "cached": dt < 0.5}
            print(f"T5 {bname}/{policy} on {dataset}: {fs.features.shape}, {gf:.2f} GFLOP/image, "
                  f"{len(man.table) / dt:.1f} img/s (incl. cache hits)")
    with atomic_path(out / "cost.csv") as tmp:
        pd.DataFrame(cost).to_csv(tmp, index=False, lineterminator="\n")
    atomic_write_text(out / "timing.json", json.dumps(timing, indent=1, sort_keys=True) + "\n")
