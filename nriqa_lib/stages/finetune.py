"""Stage ``finetune@<dataset>``: P1's image-level regimes (``finetune.regimes``: p1_frozen = P1 as published, p1 = P1's
released train.py, and our lora, full) for every backbone of
``finetune.backbones`` (empty: the pretrained ones of ``features.backbones``) and every head of ``finetune.heads``
on every split: results/finetune/<dataset>/<backbone>/<regime>/predictions.csv (the heads stage's columns; and
predictions_last.csv, the last epoch's, with ``train.report_last``) + run.json.

Each (backbone, regime, split) checkpoints after every epoch under cache/finetune/, so an interrupted stage
resumes where it stopped. With ``finetune.regimes`` empty (the offline default) the stage only writes
results/finetune/<dataset>/status.json saying so. The frozen regime is the heads stage's same heads. Under
``torchrun`` (``run.launcher``) the ranks share each batch (DistributedDataParallel); rank 0 writes.
"""
from __future__ import annotations

import json
import time

from ..core.io import atomic_write_text
from ..core.paths import finetune_dir, splits_path, write_predictions
from ..pipeline.spec import BACKBONE, D, Option, ComputeStage

STAGE = ComputeStage(name="finetune", module=__name__, matrix=True, launched=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "data.exif_transpose",
                      "features.backbones", "features.weights", "features.pretrained", "features.image_size",
                      "features.test_time", "features.threads", "train", "finetune", "run"),
              desc="P1's two recipes, LoRA and full fine-tuning (finetune.regimes; off by default)",
              deps=("data_manifests", str(splits_path(D)), "results/weights.json"), outs=(str(finetune_dir(D)),),
              options=(BACKBONE, Option("--regime", "restrict to this regime (repeatable)", repeat=True,
                                        choices=("p1_frozen", "p1", "lora", "full"), dest="regimes")),
              writes=("results/finetune", "cache/finetune", "cache/pixels"))


def finetune_backbones(p) -> list[str]:
    from ..backbones.registry import pretrained
    return list(p.finetune.backbones) or pretrained(p.features.backbones)


def run(p, dataset: str, backbones: list[str] | None = None, regimes: list[str] | None = None) -> None:
    out_root = finetune_dir(dataset)
    regimes = regimes or list(p.finetune.regimes)
    todo = [(b, r) for b in (backbones or (finetune_backbones(p) if regimes else [])) for r in regimes]
    out_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_root / "status.json", json.dumps(
        {"regimes": regimes, "backbones": list(dict.fromkeys(b for b, _ in todo)),
         "note": "finetune.regimes is empty: nothing fine-tuned (on in params-paper.yaml)" if not todo else ""},
        indent=1, sort_keys=True) + "\n")
    if not todo:
        print(f"finetune on {dataset}: finetune.regimes is empty, nothing to do")
        return
    # the heavy imports only when there is work (the offline default runs this stage as a no-op)
    import numpy as np
    import pandas as pd
    import torch

    from ..core import dist
    from .datasets import open_dataset
    from .models import backbone
    from ..core.paths import load_splits
    from ..core.device import resolve_device, run_info, set_deterministic
    from ..training.finetune import P1_MODES, REGIME_LABELS
    from ..training.protocol import jobs_from_splits
    from ..training.regimes import finetune_regime
    torch.set_num_threads(p.features.threads)
    dev = dist.init(resolve_device(p.run.device))
    set_deterministic(dev)
    man = open_dataset(p, dataset, decode=True, pixels=True)       # every image's sha256: the pixel cache's key
    jobs = jobs_from_splits(list(man.table["image"]), load_splits(splits_path(dataset)),
                            seed_offset=p.train.seed * 1000, single_split_seeds=p.train.single_split_seeds)
    if p.finetune.max_splits:
        jobs = jobs[:p.finetune.max_splits]
    cols = ["head", "split", "part", "image", "pred", "mos", "best_epoch"]
    pixels: dict = {}       # (size, filter) -> the images squashed once (P1: decoded once, kept in memory)
    from ..core.progress import Progress
    bar = Progress(len(todo), f"finetune on {dataset}", "run", every=0)
    for bname, regime in todo:
        probe = backbone(p, bname)
        px = None
        if p.features.test_time == "squash":
            from ..training.pixels import squashed_images
            from ..core.workspace import cache_dir
            pp = probe.preprocess       # P1's path: its bicubic squash first (then the processor, per batch)
            pk = (pp.squash_size, "bicubic" if pp.pre_squash else pp.interpolation)
            if pk not in pixels:
                pixels[pk] = squashed_images(man, *pk, cache=cache_dir("pixels"), workers=p.run.workers,
                                             progress=dist.is_main())
            px = pixels[pk]
        t = time.time()
        r = finetune_regime(lambda: backbone(p, bname), probe.identity(), probe.preprocess, man, jobs, regime,
                            p.finetune.heads, p.train, p.finetune, dataset, p.features.test_time, dev, p.run.amp,
                            p.run.workers, px, name=f"{bname}/{regime}")
        frames, lasts, hist, steps, tcfg, cfg = r.frames, r.lasts, r.history, r.steps, r.tcfg, r.cfg
        if not dist.is_main():
            continue
        bar.update(note=f"{bname}/{regime} done")
        out = out_root / bname / regime
        out.mkdir(parents=True, exist_ok=True)
        outputs = [("predictions.csv", frames)] + ([("predictions_last.csv", lasts)] if p.train.report_last else [])
        for name, fr in outputs:
            write_predictions(pd.concat(fr, ignore_index=True)[cols], out / name)
        info = {"regime": regime, "label": REGIME_LABELS[regime], "backbone": bname, "weights": probe.weight_id,
                "heads": list(p.finetune.heads), "splits": len(jobs), "fuse": p.finetune.fuse, "epochs": tcfg.epochs,
                "batch_size": tcfg.batch_size, "micro_batch": tcfg.micro_batch, "accumulation": tcfg.accumulation,
                "lr_head": tcfg.lr, "lr_backbone": cfg.lr_backbone if regime == "full" else None,
                "precision": cfg.precision if regime in P1_MODES else None,
                "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout}
                if regime in ("lora", *P1_MODES) else None, "history": hist,
                "run": {**run_info(dev, p.run.amp, p.run.workers), "processes": dist.world()}}
        atomic_write_text(out / "run.json", json.dumps(info, indent=1, sort_keys=True) + "\n")
        step = float(np.nanmedian(steps)) if steps else float("nan")
        print(f"finetune {bname}/{regime} on {dataset}: {len(p.finetune.heads)} head(s) x {len(jobs)} split(s) x "
              f"{tcfg.epochs} epoch(s) in {time.time() - t:.1f}s (median step {step:.3f}s, batch {tcfg.batch_size}, "
              f"{dev})")
