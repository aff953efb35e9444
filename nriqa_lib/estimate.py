"""Cost of a profile on GPUs: fine-tuning hours from step times MEASURED on a GPU (:func:`measured_hours`, from
``docs/measured/gpu_check_*.json``: scripts/gpu_check.py's per-image training and inference times), and, beside
them, a FLOP-based ESTIMATE (below), which assumes a utilisation P1's micro-batches of 2 never reach.

``python -m nriqa_lib.estimate [params-paper.yaml] [--gpus 1 8 32] [--measured FILE]`` prints both. The FLOP part counts each backbone's forward FLOPs at its
input size with torch's FlopCounterMode on the meta device (shapes only: no weights are allocated or computed, so
every backbone of the paper profile, SigLIP2 so400m included, is counted in seconds), then

* features  = N images x forward FLOPs / (MFU x peak)  vs  decode = N x megapixels / (workers x decode MP/s);
  the stage takes the larger (extraction is decode-bound for SPAQ's ~12 MP photos);
* finetune  = heads x splits x epochs x (n_train x k x forward + n_test x forward) / (MFU x peak), k = 3 for full
  fine-tuning and P1's regime (forward, activation and weight gradients), 2 for LoRA (no gradients for frozen
  weights); its images are decoded and squashed once per dataset and input size (:mod:`nriqa_lib.training.pixels`, as P1
  keeps them in memory), counted once per backbone (an upper bound: backbones of one size share it);
* heads, cross, zeroshot-magnitude and the tables are seconds to minutes on a CPU (measured in the default study).

Defaults: H100 SXM bf16 dense peak 989 TFLOP/s; MFU 0.40 for inference and 0.30 for training (typical for
ViT-B/L at batch 32-128 under bf16 autocast); decode 18 MP/s per worker (measured here: CLIVE decode + resize,
145 img/s of 0.25 MP on 2 cores); 16 workers per GPU. Work splits evenly across GPUs (torchrun ranks own
disjoint images or splits), so wall time on G GPUs is the total / G plus one model load per rank.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .backbones.models import forward_gflops, meta_gflops
from .core.config import Finetune, Splits, Train

__all__ = ["forward_gflops", "meta_gflops", "DATASET_IMAGES", "Assumptions", "estimate", "measured_hours",
           "MEASURED", "main"]

MEASURED = Path(__file__).resolve().parents[1] / "docs" / "measured" / "gpu_check_h200_run1.json"

# images and typical megapixels per image of each dataset (manifests; the releases' image sizes)
DATASET_IMAGES = {"clive": (1162, 0.25), "koniq10k": (10073, 0.79), "spaq": (11125, 12.0), "agiqa3k": (2982, 0.6),
                  "agiqa1k": (1080, 0.5), "kadid10k": (10125, 0.2), "csiq": (866, 0.26), "tid2013": (3000, 0.2),
                  "live": (779, 0.4), "synthetic": (208, 0.26)}


@dataclass
class Assumptions:
    peak_tflops: float = 989.0       # H100 SXM, bf16 dense
    mfu_infer: float = 0.40
    mfu_train: float = 0.30
    decode_mp_s: float = 18.0        # per worker
    workers: int = 16


def _plan(datasets: Sequence[str], splits: Splits, train: Train, backbones: Sequence[str], finetune: Finetune,
          limit: int) -> tuple[int, list[str], list[tuple[str, int, float, int]]]:
    """What the finetune stage of these sections runs: (splits per dataset: P1's 3 where every scheme is ``p1``, at
    most ``finetune.max_splits``; its backbones; per dataset (name, images after ``data.limit``, megapixels per image,
    epochs after ``train.per_dataset``))."""
    from .backbones.registry import pretrained
    n_splits = 3 if all(s == "p1" for s in splits.schemes.values()) else splits.n_splits
    if getattr(finetune, "max_splits", 0):
        n_splits = min(n_splits, finetune.max_splits)
    # the finetune stage's backbones (stages.finetune.finetune_backbones, not imported: the resolution stage
    # imports this module, and its DVC dependencies would take in the training code)
    ft = list(finetune.backbones) or pretrained(backbones)
    per = []
    for d in datasets:
        n, mp = DATASET_IMAGES.get(d, (1000, 1.0))
        per.append((d, min(n, limit) if limit else n, mp,
                    (train.per_dataset.get(d) or {}).get("epochs", train.epochs)))
    return n_splits, ft, per


def estimate(datasets: Sequence[str], splits: Splits, train: Train, backbones: Sequence[str], finetune: Finetune,
             gflops: dict[str, float], a: Assumptions = Assumptions(), limit: int = 0) -> list[dict]:
    """Seconds per stage item on one GPU (features per dataset x backbone; finetune per dataset x backbone x
    regime), from the profile's datasets, splits, epochs and ratios (``data.datasets`` and ``data.limit``, the ``splits`` and
    ``train`` sections, ``features.backbones``, the ``finetune`` section)."""
    rows = []
    train_frac = splits.ratios[0]
    n_splits, ft, per_dataset = _plan(datasets, splits, train, backbones, finetune, limit)
    for d, n, mp, epochs in per_dataset:
        decode_s = n * mp / (a.decode_mp_s * a.workers)
        for b in backbones:
            g = gflops[b]
            comp = n * g * 1e9 / (a.mfu_infer * a.peak_tflops * 1e12)
            rows.append({"stage": "features", "dataset": d, "backbone": b, "regime": "", "gflops_per_image": g,
                         "compute_s": comp, "decode_s": decode_s, "seconds": max(comp, decode_s)})
        for b in ft:
            for r in finetune.regimes:
                k = 3 if r in ("full", "p1") else 2      # p1 trains every backbone weight, as full does (p1_frozen: adapters)
                n_tr = n * train_frac
                fl = len(finetune.heads) * n_splits * epochs * (n_tr * k + (n - n_tr)) * gflops[b] * 1e9
                comp = fl / (a.mfu_train * a.peak_tflops * 1e12)
                dec = decode_s if r == finetune.regimes[0] else 0.0      # the pixel cache, built once
                rows.append({"stage": "finetune", "dataset": d, "backbone": b, "regime": r,
                             "gflops_per_image": gflops[b], "compute_s": comp, "decode_s": dec,
                             "seconds": comp + dec})
    return rows


def measured_hours(datasets: Sequence[str], splits: Splits, train: Train, backbones: Sequence[str],
                   finetune: Finetune, measured: dict, limit: int = 0) -> list[dict]:
    """Solo fine-tuning GPU-hours per (dataset, backbone, regime) of params ``p`` from measured times
    (scripts/gpu_check.py's ``speed.<backbone>.<regime>.per_train_image_s``, the training step / 12 images, and
    ``speed.<backbone>.extract.extract_img_s`` for the val/test predictions of every epoch): heads x splits x
    epochs x (n_train x per-image + n_eval / images per s). A regime without its own time takes the nearest
    measured one (``p1_frozen``: ``lora``'s, the same trained tensors; otherwise ``p1``'s), said in ``source``; a
    backbone never measured gives ``hours`` None. The sections as :func:`estimate` takes them (``data.limit`` and
    ``finetune.max_splits`` honoured)."""
    n_splits, ft, per_dataset = _plan(datasets, splits, train, backbones, finetune, limit)
    rows = []
    for d, n, _, epochs in per_dataset:
        for b in ft:
            ex = measured.get(f"speed.{b}.extract")
            for r in finetune.regimes:
                order = [r] + (["lora"] if r == "p1_frozen" else []) + ["p1"]
                src = next((x for x in order if measured.get(f"speed.{b}.{x}")), None)
                h = None
                if ex and src:
                    per = measured[f"speed.{b}.{src}"]["per_train_image_s"]
                    n_tr = n * splits.ratios[0]
                    h = len(finetune.heads) * n_splits * epochs * (n_tr * per + (n - n_tr) / ex["extract_img_s"]) / 3600
                rows.append({"dataset": d, "backbone": b, "regime": r, "hours": h,
                             "source": src if src == r else (f"{src}'s time" if src else "not measured")})
    return rows


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from .core.params import load_params
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="?", default="params-paper.yaml")
    ap.add_argument("--gpus", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--measured", default=str(MEASURED), help="a scripts/gpu_check.py output (gpu_check.json)")
    a = ap.parse_args(argv)
    p = load_params(a.params)
    pd.set_option("display.width", 200)
    meas = json.loads(Path(a.measured).read_text())
    dev = (meas.get("env") or {}).get("nvidia_smi", "?").split(",")[0]
    mh = pd.DataFrame(measured_hours(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, meas,
                                     limit=p.data.limit))
    if len(mh):
        print(f"MEASURED step times ({Path(a.measured).name}: {dev}, torch {(meas.get('env') or {}).get('torch')}), "
              f"fine-tuning run by run (finetune.fuse 1), GPU-hours:")
        print(mh.groupby(["backbone", "regime", "source"], sort=False, dropna=False)["hours"].sum(min_count=1)
              .round(2).to_string())
        known = mh["hours"].dropna()
        print(f"total {known.sum():.1f} GPU-h measured ({len(known)} of {len(mh)} dataset x backbone x regime "
              f"cells have a measured time)")
        print("fused runs (finetune.fuse): not yet timed on a GPU (scripts/gpu_check.py --fused); on a CPU, which is "
              "compute-bound, `make bench` measures their ratio to these solo runs")
    else:
        print("finetune.regimes is empty: nothing is fine-tuned")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gf = {}
    for b in dict.fromkeys([*p.features.backbones, *p.finetune.backbones]):
        gf[b], size = meta_gflops(b, p.features.image_size or None)
        print(f"{b}: {gf[b]:.1f} GFLOP per image at {size} px")
    df = pd.DataFrame(estimate(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, gf,
                               limit=p.data.limit))
    print("ESTIMATE from FLOPs (the compute floor at the stated MFU, decode at the stated rate), GPU-hours on one "
          "H100:")
    print(df.groupby(["stage", "regime"])["seconds"].sum().div(3600).round(2).to_string())
    print(df.groupby(["stage", "dataset"])["seconds"].sum().div(3600).round(2).to_string())
    total = df["seconds"].sum() / 3600
    for g in a.gpus:
        print(f"wall time on {g} GPU(s): {total / g:.1f} h (total {total:.1f} GPU-h split evenly)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
