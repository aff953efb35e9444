"""Benchmark: ``python -m nriqa_lib.bench`` prints ``name: value`` lines (speed/memory targets live here,
not in timed tests).

- heads/s for 60 heads on a 1162 x 1280 feature matrix, trained batched vs one at a time (goal >= 10x);
- extraction images/s for tf_efficientnet_lite0 on CLIVE (decode + transform + forward, our pipeline) vs a
  bare timm forward loop over the same, already transformed tensors (goal: within 1.3x);
- peak resident memory.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np
import torch


def bench_heads(n_heads: int = 60, epochs: int = 3, n: int = 1162, d: int = 1280) -> dict[str, float]:
    from .train import HeadJob, TrainConfig, train_heads
    g = np.random.default_rng(0)
    X = g.normal(size=(n, d)).astype(np.float32)
    y = g.random(n).astype(np.float32)
    jobs = []
    for s in range(n_heads):
        p = np.random.default_rng(s).permutation(n)
        jobs.append(HeadJob(p[:813], p[813:929], p[929:], seed=s))
    cfg = TrainConfig(head="B", epochs=epochs, batch_size=64)
    train_heads(X, y, jobs[:2], cfg)                      # warm-up (imports, allocator)
    t = time.perf_counter()
    train_heads(X, y, jobs, cfg)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    for j in jobs:
        train_heads(X, y, [j], cfg)
    single = time.perf_counter() - t
    return {"heads_per_s_batched": n_heads / batched, "heads_per_s_one_at_a_time": n_heads / single,
            "heads_speedup": single / batched, "heads_epochs": epochs}


def bench_extraction(root: str, n_images: int = 256, batch_size: int = 8) -> dict[str, float]:
    import timm
    from .backbones import create_backbone
    from .data.manifest import load_dataset
    from .features import build_transform, extract_features, load_image
    m = load_dataset("clive", {"clive": root}, decode=False)
    m = type(m)(m.name, m.table.iloc[:n_images].reset_index(drop=True), m.root, m.card)
    bb = create_backbone("tf_efficientnet_lite0")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        extract_features(bb, m, batch_size=batch_size, cache_dir=tmp, progress=False)
        ours = n_images / (time.perf_counter() - t)
    tf = build_transform(bb.preprocess, "squash")
    t = time.perf_counter()
    xs = torch.stack([tf(load_image(p)) for p in m.paths()])
    decode = n_images / (time.perf_counter() - t)
    bare = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, n_images, batch_size):
            bare.forward_head(bare.forward_features(xs[i:i + batch_size]), pre_logits=True)
    bare_ips = n_images / (time.perf_counter() - t)
    return {"extract_images_per_s_ours": ours, "extract_images_per_s_bare_timm_on_tensors": bare_ips,
            "decode_transform_images_per_s": decode, "extract_ratio_bare_over_ours": bare_ips / ours}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clive", default=os.environ.get("NRIQA_ROOT_CLIVE", "../shared/datasets/clive"))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads}
    out.update(bench_heads())
    if os.path.isdir(a.clive):
        out.update(bench_extraction(a.clive, a.images))
    else:
        print(f"note: CLIVE not found at {a.clive}; extraction benchmark skipped")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in out.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
