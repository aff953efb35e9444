"""How heads are trained on splits (the protocol of STUDY_SPEC.md section 2), used by the heads, cross and
figures stages: split files -> jobs (one per split, or per seed on a single split), the heads of each
backbone, the cross-dataset step.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..backbones.registry import is_control
from ..core.config import T1, T2, T3, Train
from ..data.manifest import Manifest
from ..features.sets import FeatureSet
from ..heads.registry import SELECTION_HEADS, get_predictor
from ..heads.mlp import selection_shares
from ..core.io import atomic_path
from ..core.paths import write_predictions
from .trainer import HeadJob, TrainConfig, ridge_predictions, train_heads

__all__ = ["jobs_from_splits", "heads_for", "mos_of", "run_heads", "save_heads", "cross_heads", "cross_dataset"]


def jobs_from_splits(images: Sequence[str], splits: pd.DataFrame, seed_offset: int = 0,
                     single_split_seeds: int = Train().single_split_seeds,
                     seeds_per_split: int = 1) -> list[HeadJob]:
    """One HeadJob per split: index arrays into ``images`` (the feature-matrix row order).

    A dataset with a single split (e.g. KonIQ-10k's official one) gets ``single_split_seeds`` jobs on that
    partition, one per training seed (tagged split 0..S-1), so its numbers carry the seed-to-seed spread.
    Several splits and ``seeds_per_split`` > 1: that many jobs per split (tagged split k, seed s), seed s > 0 training with
    the split's seed + 7919 s (s = 0: the one-seed job itself); the tables average each split's metric over them.
    """
    pos = {im: i for i, im in enumerate(images)}
    missing = set(splits["image"]) - set(pos)
    if missing:
        raise KeyError(f"split file names {len(missing)} image(s) absent from the features, e.g. {sorted(missing)[0]!r}")
    jobs = []
    for k, s in splits.groupby("split", sort=True):
        ix = {p: np.sort(s.loc[s["part"] == p, "image"].map(pos).to_numpy(dtype=np.int64)) for p in ("train", "val", "test")}
        jobs.append(HeadJob(ix["train"], ix["val"], ix["test"], seed=int(k) + seed_offset, tags={"split": int(k)}))
    if len(jobs) == 1 and single_split_seeds > 1:
        j = jobs[0]
        jobs = [dataclasses.replace(j, seed=j.seed + k, tags={"split": k}) for k in range(single_split_seeds)]
    elif len(jobs) > 1 and seeds_per_split > 1:
        jobs = [dataclasses.replace(j, seed=j.seed + 7919 * s, tags={**j.tags, "seed": s})
                for j in jobs for s in range(seeds_per_split)]
    return jobs


def heads_for(backbone: str, t1: T1, t2: T2) -> list[str]:
    """Head specs trained for a backbone: T1's head, T2's heads, T3's selection heads (controls: T1 only)."""
    if is_control(backbone):
        return [t1.head]
    return list(dict.fromkeys([t1.head, *t2.heads, t2.reference, *SELECTION_HEADS]))


def mos_of(manifest: Manifest, images: Sequence[str]) -> np.ndarray:
    """The MOS of ``images`` (a feature set's row order) from the manifest."""
    return manifest.table.set_index("image").loc[list(images), "mos"].to_numpy()


def run_heads(fs: FeatureSet, mos: np.ndarray, splits: pd.DataFrame, heads: Sequence[str], train: Train,
              t3: T3 | None = None, dataset: str | None = None,
              done: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every head spec of ``heads`` on the features ``fs`` (MOS ``mos`` in its row order) on every split
    (each spec's splits batched together), with the ``train`` section (``train.per_dataset[dataset]`` applied)
    and ``t3`` for the K-way head.

    Returns (predictions: head, split, [seed: with ``train.seeds_per_split`` > 1], part, image, pred, mos, best_epoch;
    shares: head, split, layer, candidate, share; several seeds: a row per seed). With ``train.report_last`` the predictions' ``attrs["last"]`` holds the same rows at
    the last epoch (best_epoch = the last epoch's index; ridge has no epochs: its own rows). ``done(head)`` is
    called after each head spec (a stage's progress).
    """
    seeds = TrainConfig.from_params(train, "B", t3, dataset).seeds_per_split     # train.per_dataset may set it
    jobs = jobs_from_splits(fs.images, splits, seed_offset=train.seed * 1000,
                            single_split_seeds=train.single_split_seeds, seeds_per_split=seeds)
    images = np.asarray(fs.images)
    preds, shares, lasts = [], [], []
    by_seed = any("seed" in j.tags for j in jobs)

    def long(df, head, best):
        df.insert(0, "head", head)
        df["split"] = [jobs[j].tags["split"] for j in df["job"]]
        if by_seed:
            df["seed"] = [jobs[j].tags["seed"] for j in df["job"]]
        df["image"] = images[df["index"].to_numpy()]
        df["best_epoch"] = [best[j] for j in df["job"]]
        return df.drop(columns=["job", "index"])

    for head in heads:
        last = None
        if get_predictor(head).kind == "linear":   # ridge (closed form), alpha chosen like the heads' epoch
            df, _ = ridge_predictions(fs.features, mos, jobs, train.select_on)
            heads_trained, best = [], [-1] * len(jobs)
            last = (df.copy(), best)
        else:
            cfg = TrainConfig.from_params(train, head, t3, dataset)
            res = train_heads(fs.features, mos, jobs, cfg)
            df, heads_trained, best = res.predictions, res.heads, res.best_epoch
            if res.last_predictions is not None:
                last = (res.last_predictions, [cfg.epochs - 1] * len(jobs))
        preds.append(long(df, head, best))
        if done is not None:
            done(head)
        if train.report_last and last is not None:
            lasts.append(long(last[0], head, last[1]))
        for j, h in enumerate(heads_trained):
            for layer, d in selection_shares(h).items():
                for cand, s in d.items():
                    shares.append((head, jobs[j].tags["split"], layer, cand, s))
    cols = ["head", "split", *(["seed"] if by_seed else []), "part", "image", "pred", "mos", "best_epoch"]
    pred = pd.concat(preds, ignore_index=True)[cols]
    if lasts:
        pred.attrs["last"] = pd.concat(lasts, ignore_index=True)[cols]
    return pred, pd.DataFrame(shares, columns=["head", "split", "layer", "candidate", "share"])


def save_heads(pred: pd.DataFrame, shares: pd.DataFrame, out_dir: Path) -> None:
    """predictions.csv (the selected epoch), selection_shares.csv, and predictions_last.csv where the
    predictions carry the last epoch's rows (``train.report_last``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(pred, out_dir / "predictions.csv")
    if "last" in pred.attrs:
        write_predictions(pred.attrs["last"], out_dir / "predictions_last.csv")
    with atomic_path(out_dir / "selection_shares.csv") as tmp:
        shares.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def cross_heads(t2: T2) -> list[str]:
    """Heads of the cross-dataset step: T2's MLP heads and the selection heads (P1's headline cross-dataset
    number is B_Gated KonIQ -> CLIVE)."""
    return [h for h in dict.fromkeys([t2.reference, *t2.heads, *SELECTION_HEADS]) if get_predictor(h).kind == "mlp"]


def cross_dataset(fa: FeatureSet, mos_a: np.ndarray, splits_a: pd.DataFrame, fb: FeatureSet, mos_b: np.ndarray,
                  heads: Sequence[str], train: Train, t3: T3 | None = None, train_ds: str | None = None) -> pd.DataFrame:
    """Train on the source features ``fa`` (train part of each of its splits ``splits_a``), test on all of the
    target features ``fb``.

    The epoch is chosen as the profile says (``train.select_on``): on the source split's val part (clean
    protocol), or, as P1 does, on the target set itself (``test``: optimistic, labelled so in the tables).
    Returns long predictions (head, split, image, pred, mos) on the test dataset.
    """
    X = np.concatenate([fa.features, fb.features])
    y = np.concatenate([mos_a, mos_b])
    base = jobs_from_splits(fa.images, splits_a, seed_offset=train.seed * 1000,
                            single_split_seeds=train.single_split_seeds)
    test_ix = np.arange(len(fa.images), len(X))
    jobs = [dataclasses.replace(j, test_idx=test_ix) for j in base]
    frames = []
    for head in heads:
        pr = train_heads(X, y, jobs, TrainConfig.from_params(train, head, t3, train_ds)).predictions
        pr = pr[pr["part"] == "test"].copy()
        pr.insert(0, "head", head)
        pr["split"] = [jobs[j].tags["split"] for j in pr["job"]]
        pr["image"] = np.asarray(fb.images)[pr["index"].to_numpy() - len(fa.images)]
        frames.append(pr[["head", "split", "image", "pred", "mos"]])
    return pd.concat(frames, ignore_index=True)
