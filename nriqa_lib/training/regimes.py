"""One backbone fine-tuned with one regime on every split and head (P1's Table 5 cells): the heads' settings from
the ``train`` section, the regime's from ``finetune`` (:meth:`FinetuneConfig.from_train`), a checkpoint key per
(dataset, manifest, backbone, regime, head, view policy), and every run through :func:`finetune_group` (fused where
it can). The finetune stage unpacks its params, calls :func:`finetune_regime` and writes what it returns."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core import dist
from ..core.cache import key_of
from ..core.config import Finetune, Train
from ..core.paths import finetune_ckpt
from ..data.manifest import Manifest
from .finetune import FinetuneConfig
from .fused import RunSpec, finetune_group
from .trainer import HeadJob, TrainConfig

__all__ = ["RegimeRun", "finetune_regime"]


@dataclass
class RegimeRun:
    """What :func:`finetune_regime` returns: the selected epoch's predictions and the last epoch's (one frame per
    head and split; ``image`` filled), every epoch's scores (``history``), each run's median step time, and the
    settings of the last head (what run.json records)."""
    frames: list[pd.DataFrame] = field(default_factory=list)
    lasts: list[pd.DataFrame] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    tcfg: TrainConfig | None = None
    cfg: FinetuneConfig | None = None


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def finetune_regime(make_backbone: Callable[[], torch.nn.Module], identity: dict, preprocess, man: Manifest,
                    jobs: Sequence[HeadJob], regime: str, heads: Sequence[str], train: Train, finetune: Finetune,
                    dataset: str, test_time: str, device: torch.device, amp: str = "off", workers: int = 0,
                    pixels: np.ndarray | None = None, name: str = "") -> RegimeRun:
    """Every head of ``heads`` x every split of ``jobs`` fine-tuned with ``regime`` on the backbone that
    ``make_backbone`` builds (``identity``: its identity, part of the checkpoint key); ``pixels``: the images
    squashed once (P1's path), else decoded per epoch; ``name`` (backbone/regime) labels the progress lines."""
    images = list(man.table["image"])
    mos = man.table["mos"].to_numpy(dtype=np.float64)
    specs, tcfg, cfg = [], None, None
    for head in heads:
        tcfg = TrainConfig.from_params(train, head, None, dataset)   # P1's heads (t3 only for K-way)
        cfg = FinetuneConfig.from_train(tcfg, regime, finetune)
        ident = json.dumps({"dataset": dataset, "manifest": man.content_hash, "backbone": identity,
                            "regime": regime, "head": head, "test_time": test_time}, sort_keys=True)
        key = key_of(ident)
        for job in jobs:
            k = job.tags["split"]
            log = (lambda msg, k=k, h=head: print(f"  {name}/{h} split {k}: {msg}", file=sys.stderr,
                                                  flush=True) if dist.is_main() else None)
            specs.append(RunSpec(job, cfg, tcfg, finetune_ckpt(key, k), log))
    results = finetune_group(make_backbone, preprocess, man.paths(), mos, specs, fuse=finetune.fuse, device=device,
                             amp=amp, workers=workers, test_time=test_time, pixels=pixels, exif=man.exif_transpose,
                             label=f"finetune {name} on {dataset}")
    out = RegimeRun(tcfg=tcfg, cfg=cfg)
    for s, res in zip(specs, results):
        head, k = s.tcfg.head, s.job.tags["split"]
        for frames, df, ep in ((out.frames, res.predictions, res.best_epoch),
                               (out.lasts, res.last_predictions, s.tcfg.epochs - 1)):
            if df is not None:
                df = df.assign(head=head, split=k, best_epoch=ep)
                df["image"] = np.asarray(images)[df["index"].to_numpy()]
                frames.append(df)
        out.history += [{"head": head, "split": k, **{a: _clean(b) for a, b in h.items()}} for h in res.history]
        out.steps.append(res.step_seconds)
    return out
