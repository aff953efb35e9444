"""Benchmark: ``python -m nriqa_lib.bench`` prints ``name: value`` lines (speed/memory targets live here,
not in timed tests).

- heads/s for 60 heads on a 1162 x 1280 feature matrix, trained batched vs one at a time, and the heads
  roofline: the workload's lower-bound time on this machine, measured in the same run.

  Model of the bound: time >= FLOPs / F + optimizer bytes / W, where F is the measured fp32 matmul rate at
  the heads' shapes ((B x d) @ (d x h), batched over the heads) and W the bandwidth a fused torch Adam step
  achieves over the stacked weights (it reads param, grad, m, v and writes param, m, v: 28 bytes per
  parameter). FLOPs per training sample of a d-h-h-1 head: forward 2(dh + h^2 + h); backward weight grads of
  all layers + input grads of layers 2 and 3, i.e. 4dh + 6h^2 + 6h in all; plus a forward pass per
  selection image per epoch and over all N images at the end. Elementwise work (activations, loss, the
  pairwise margin term), gathers and Python are not in the bound: they are what the ratio measures.
- extraction images/s for tf_efficientnet_lite0 on CLIVE (decode + transform + forward, our pipeline) vs a
  bare timm forward loop over the same, already transformed tensors (goal: within 1.3x), and its roofline:
  forward FLOPs per image (counted, FlopCounterMode) at the measured matmul GFLOP/s, in series with the measured
  decode + transform rate (one process decodes, then runs the model): ``extract_roofline_ratio`` = that bound /
  measured images/s (depthwise convolutions run far below the matmul rate, so a ratio > 1 is expected);
- decode: images/s of SPAQ-sized (4000 x 3000) JPEGs decoded in full vs in draft mode (``features.jpeg_draft``),
  and three backbones extracted with one shared decode pass (``extract_many``) vs one pass each;
- fused fine-tuning (:mod:`nriqa_lib.training.fused`): runs x micro-steps per second of k = 3, 9, 27 runs of a
  tiny ViT (timm, fused-qkv LoRA) and a tiny ResNet (timm resnet10t, conv LoRA + BatchNorm) in P1's published recipe
  (p1_frozen, fp32: bf16 matmuls are slow on CPUs without AMX) at micro-batch 2, fused vs one by one, and the ratio
  (a CPU is compute-bound: the gain is on a GPU, where kernel launches bound micro-batches of 2);
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


def bench_heads(n_heads: int = 60, epochs: int = 3, n: int = 1162, d: int = 1280,
                repeats: int = 3) -> dict[str, float]:
    from .training.trainer import HeadJob, TrainConfig, train_heads
    g = np.random.default_rng(0)
    X = g.normal(size=(n, d)).astype(np.float32)
    y = g.random(n).astype(np.float32)
    jobs = []
    for s in range(n_heads):
        p = np.random.default_rng(s).permutation(n)
        jobs.append(HeadJob(p[:813], p[813:929], p[929:], seed=s))
    cfg = TrainConfig(head="B", epochs=epochs, batch_size=64)
    train_heads(X, y, jobs[:2], cfg)                      # warm-up (imports, allocator)
    batched = np.inf
    for _ in range(repeats):                              # fastest of repeats, like the peak rates it is
        t = time.perf_counter()                           # compared with (this VM's timings vary by ~15%)
        train_heads(X, y, jobs, cfg)
        batched = min(batched, time.perf_counter() - t)
    t = time.perf_counter()
    for j in jobs:
        train_heads(X, y, [j], cfg)
    single = time.perf_counter() - t
    return {"heads_per_s_batched": n_heads / batched, "heads_per_s_one_at_a_time": n_heads / single,
            "heads_speedup": single / batched, "heads_epochs": epochs, "heads_batched_s": batched}


def heads_workload(n_heads: int, epochs: int, n_train: int, n_sel: int, n: int, d: int, h: int,
                   batch: int) -> dict[str, float]:
    """FLOPs and optimizer bytes of training ``n_heads`` d-h-h-1 heads (see the module docstring)."""
    fwd = 2 * (d * h + h * h + h)
    train = 4 * d * h + 6 * h * h + 6 * h
    params = d * h + h + h * h + h + h + 1
    steps = epochs * -(-n_train // batch)
    flops = n_heads * (epochs * (n_train * train + n_sel * fwd) + n * fwd)
    return {"flops": float(flops), "opt_bytes": float(28 * params * n_heads * steps), "steps": steps,
            "params": params * n_heads}


def machine_rates(n_heads: int = 60, d: int = 1280, h: int = 512, batch: int = 64, reps: int = 7) -> dict[str, float]:
    """Measured fp32 batched-matmul GFLOP/s at the heads' shapes and the fused-Adam bandwidth (GB/s): the
    fastest of ``reps`` timings each (peak rates give the lowest, i.e. strictest, bound)."""
    def fastest(f) -> float:
        f()
        best = np.inf
        for _ in range(reps):
            t = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t)
        return best
    a, b = torch.randn(n_heads, batch, d), torch.randn(n_heads, d, h)
    gflops = 2 * n_heads * batch * d * h / fastest(lambda: torch.bmm(a, b)) / 1e9
    ps = [torch.zeros(n_heads, d, h, requires_grad=True), torch.zeros(n_heads, h, h, requires_grad=True)]
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.Adam(ps, lr=1e-3, fused=True)
    nbytes = 28 * sum(p.numel() for p in ps)
    return {"matmul_gflops": gflops, "adam_gb_per_s": nbytes / fastest(opt.step) / 1e9}


def bench_heads_roofline(n_heads: int = 60, epochs: int = 3, n: int = 1162, d: int = 1280, h: int = 512,
                         batch: int = 64, measured_s: float | None = None) -> dict[str, float]:
    rates = machine_rates(n_heads, d, h, batch)
    w = heads_workload(n_heads, epochs, 813, 116, n, d, h, batch)
    bound = w["flops"] / (rates["matmul_gflops"] * 1e9) + w["opt_bytes"] / (rates["adam_gb_per_s"] * 1e9)
    out = {**rates, "heads_workload_gflop": w["flops"] / 1e9, "heads_optimizer_gb": w["opt_bytes"] / 1e9,
           "heads_optimizer_steps": w["steps"], "heads_bound_s": bound}
    if measured_s is not None:
        out.update(heads_measured_s=measured_s, heads_roofline_ratio=measured_s / bound)
    return out


def bench_extraction(root: str, n_images: int = 256, batch_size: int = 8) -> dict[str, float]:
    import timm
    from .backbones.models import create_backbone
    from .data.manifest import load_dataset
    from .features.transforms import build_transform
    from .extraction.extract import extract_features
    from .features.decode import load_image
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
    # roofline: forward FLOPs per image (counted) at the machine's measured matmul rate, then decode in series
    from .estimate import forward_gflops
    gf = forward_gflops(bb)
    rate = machine_rates()["matmul_gflops"]
    compute_bound = rate / gf
    bound = 1 / (1 / compute_bound + 1 / decode)          # workers=0: decode and forward take turns
    return {"extract_images_per_s_ours": ours, "extract_images_per_s_bare_timm_on_tensors": bare_ips,
            "decode_transform_images_per_s": decode, "extract_ratio_bare_over_ours": bare_ips / ours,
            "extract_forward_gflop_per_image": gf, "extract_compute_bound_images_per_s": compute_bound,
            "extract_bound_images_per_s": bound, "extract_roofline_ratio": bound / ours}


def bench_decode(root: str, n_images: int = 32, n_shared: int = 128) -> dict[str, float]:
    """Decode throughput of large JPEGs with and without draft mode, and one shared decode pass for three
    backbones vs one pass each.

    Large JPEGs: CLIVE images upscaled (bicubic) to SPAQ's typical 4000 x 3000 and saved at quality 90 (no
    SPAQ images here); ``squash`` to 224 px with ``features.jpeg_draft`` 2 decodes them at 1/4 scale.
    Shared pass: tf_efficientnet_lite0/1/2 (random weights: the same FLOPs) on ``n_shared`` CLIVE images,
    ``extract_many`` vs three ``extract_features``.
    """
    from PIL import Image
    from .backbones.models import create_backbone
    from .data.manifest import load_dataset
    from .features.transforms import build_transform
    from .features.decode import draft_request, draft_scale, load_image
    from .extraction.extract import extract_features, extract_many
    m = load_dataset("clive", {"clive": root}, decode=False)
    bb = create_backbone("random_tf_efficientnet_lite0")
    tf = build_transform(bb.preprocess, "squash")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = []
        for i, p in enumerate(m.paths()[:n_images]):
            f = os.path.join(tmp, f"big_{i}.jpg")
            load_image(p).resize((4000, 3000), Image.BICUBIC).save(f, quality=90)
            big.append(f)
        req = draft_request((4000, 3000), bb.preprocess, "squash", 2.0)
        for name, scale in (("full", 1), ("draft", draft_scale((4000, 3000), req))):
            t = time.perf_counter()
            for f in big:
                tf(load_image(f, scale))
            out[f"decode_4000x3000_{name}_images_per_s"] = n_images / (time.perf_counter() - t)
        out["decode_4000x3000_draft_scale"] = draft_scale((4000, 3000), req)
        out["decode_draft_speedup"] = (out["decode_4000x3000_draft_images_per_s"]
                                       / out["decode_4000x3000_full_images_per_s"])
        sub = type(m)(m.name, m.table.iloc[:n_shared].reset_index(drop=True), m.root, m.card)
        bbs = [create_backbone(f"tf_efficientnet_lite{k}", pretrained=False) for k in range(3)]
        t = time.perf_counter()
        for k, b in enumerate(bbs):
            extract_features(b, sub, batch_size=8, cache_dir=os.path.join(tmp, f"one{k}"), progress=False)
        separate = time.perf_counter() - t
        t = time.perf_counter()
        extract_many(bbs, sub, batch_size=8, cache_dir=os.path.join(tmp, "shared"), progress=False)
        shared = time.perf_counter() - t
    out.update(extract_3_backbones_separate_s=separate, extract_3_backbones_shared_decode_s=shared,
               extract_shared_decode_speedup=separate / shared)
    return out


def bench_fused(ks: tuple[int, ...] = (3, 9, 27), n_train: int = 32, n_epochs: int = 2) -> dict[str, float]:
    """Fused vs solo fine-tuning throughput (module docstring): runs x micro-steps per second, each k measured on
    the same runs (their own seeds and splits) both ways, one epoch of ``n_train`` images each."""
    import timm
    from torch import nn
    from .backbones.registry import Preprocess
    from .training.finetune import FinetuneConfig
    from .training.fused import RunSpec, finetune_group
    from .training.trainer import HeadJob, TrainConfig

    class Tiny(nn.Module):
        def __init__(self, arch: str):
            super().__init__()
            kw = dict(depth=2, embed_dim=64, num_heads=2, img_size=32) if arch.startswith("vit") else {}
            self.model = timm.create_model(arch, pretrained=False, num_classes=0, **kw)
            self.dim = self.model.num_features

        def forward(self, x):
            return self.model(x)

    n = n_train + 8
    pixels = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    mos = np.linspace(0, 1, n)
    pp = Preprocess(32, (0.5,) * 3, (0.5,) * 3)
    out: dict[str, float] = {}
    for arch, name in (("vit_tiny_patch16_224", "vit"), ("resnet10t", "resnet")):
        torch.manual_seed(0)
        ref = Tiny(arch).state_dict()

        def make(arch=arch, ref=ref):         # the same (pretrained-like) weights in every run: one shared backbone
            m = Tiny(arch)
            m.load_state_dict(ref)
            return m
        for k in ks:
            if k == 1:                                # one run: the solo loop either way
                continue
            specs = []
            for r in range(k):
                p = np.random.default_rng(r).permutation(n)
                tcfg = TrainConfig(epochs=n_epochs, batch_size=12, micro_batch=2, accumulation="p1", hidden=64)
                cfg = FinetuneConfig(mode="p1_frozen", epochs=n_epochs, micro_batch=2, batch_size=12, precision="fp32")
                specs.append(RunSpec(HeadJob(p[:n_train], p[n_train:n_train + 4], p[n_train + 4:], seed=r), cfg, tcfg))
            steps = k * n_epochs * (n_train // 2)
            res = {}
            for fuse in (1, k):
                best = np.inf
                for _ in range(2 if k > 1 else 1):      # the faster of two (the first fused call warms up)
                    t = time.perf_counter()
                    finetune_group(make, pp, [f"{i}.png" for i in range(n)], mos, specs, fuse=fuse,
                                   pixels=pixels, say=lambda m: None)
                    best = min(best, time.perf_counter() - t)
                res[fuse] = steps / best
            out[f"fused_{name}_k{k}_run_steps_per_s"] = res[k]
            out[f"solo_{name}_k{k}_run_steps_per_s"] = res[1]
            out[f"fused_{name}_k{k}_speedup"] = res[k] / res[1]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clive", default=os.environ.get("NRIQA_ROOT_CLIVE", "../shared/datasets/clive"))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads}
    out.update(bench_heads())
    out.update(bench_heads_roofline(measured_s=out["heads_batched_s"]))
    out.update(bench_fused())
    if os.path.isdir(a.clive):
        out.update(bench_extraction(a.clive, a.images))
        out.update(bench_decode(a.clive))
    else:
        print(f"note: CLIVE not found at {a.clive}; extraction benchmark skipped")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in out.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
