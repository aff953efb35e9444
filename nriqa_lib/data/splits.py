"""Train/val/test splits, materialised as files so every stage uses the same partitions.

A split file is long format: ``split, image, part`` with part in {train, val, test} (``unused``: an image P1's
protocol never scores, :func:`p1_splits`).
Schemes (STUDY_SPEC.md section 2):
- ``random``: seeded, ratios (default 70/10/20), group-disjoint whenever images share a group;
- ``official``: the dataset's own split column ``set`` (KonIQ-10k);
- ``clive_liqe``: the 10 published CLIVE splits (LIQE), read from the label folder;
- ``p1``: P1's protocol, seeds 8/19/25, ``torch.utils.data.random_split`` 80/20 train/test, no val.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .manifest import ManifestError
from ..core.io import atomic_path

PARTS = ("train", "val", "test")
P1_SEEDS = (8, 19, 25)

__all__ = ["random_splits", "official_split", "clive_liqe_splits", "p1_splits", "make_splits",
           "save_splits", "PARTS", "P1_SEEDS"]


def _group_assign(groups: pd.Series, ratios: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Assign whole groups to parts: shuffle groups, cut the cumulative image count at the ratios."""
    uniq, inverse, counts = np.unique(groups.to_numpy(), return_inverse=True, return_counts=True)
    order = rng.permutation(len(uniq))
    cum = np.cumsum(counts[order]) / counts.sum()
    edges = np.cumsum(ratios)[:-1]
    part_of_sorted = np.searchsorted(edges, cum - 1e-12, side="left")
    # every part with a positive ratio gets at least one group
    for k, r in enumerate(ratios):
        if r > 0 and not (part_of_sorted == k).any():
            raise ManifestError(f"too few groups ({len(uniq)}) for ratios {tuple(ratios)}")
    part_of_group = np.empty(len(uniq), dtype=int)
    part_of_group[order] = part_of_sorted
    return part_of_group[inverse]


def random_splits(df: pd.DataFrame, n_splits: int = 10, ratios: Sequence[float] = (0.7, 0.1, 0.2),
                  seed: int = 0, seeds: Sequence[int] | None = None, group_col: str = "group") -> pd.DataFrame:
    """Seeded random splits; group-disjoint (whole groups per part) when ``group_col`` repeats.

    Split ``i`` uses ``numpy.random.default_rng(seeds[i])``, seeds defaulting to ``seed + i``.
    ``ratios`` are (train, val, test) or (train, test).
    """
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) not in (2, 3) or abs(sum(ratios) - 1) > 1e-9 or min(ratios) < 0:
        raise ValueError(f"ratios must be 2 or 3 non-negative numbers summing to 1, got {ratios}")
    parts = PARTS if len(ratios) == 3 else ("train", "test")
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(n_splits)]
    grouped = group_col in df and df[group_col].nunique() < len(df)
    rows = []
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        if grouped:
            assign = _group_assign(df[group_col], ratios, rng)
        else:
            perm = rng.permutation(len(df))
            bounds = np.round(np.cumsum(ratios) * len(df)).astype(int)
            assign = np.empty(len(df), dtype=int)
            assign[perm] = np.searchsorted(bounds, np.arange(len(df)), side="right")
        rows.append(pd.DataFrame({"split": i, "seed": s, "image": df["image"].to_numpy(),
                                  "part": np.asarray(parts)[assign]}))
    return pd.concat(rows, ignore_index=True)


def official_split(df: pd.DataFrame, column: str = "set") -> pd.DataFrame:
    """The dataset's own split (e.g. KonIQ-10k's 7058/1000/2015) as split 0."""
    if column not in df:
        raise ManifestError(f"dataset has no official split column {column!r}")
    bad = ~df[column].isin(PARTS)
    if bad.any():
        raise ManifestError(f"official split column {column!r} has value {df[column][bad].iloc[0]!r}, "
                            f"expected one of {PARTS}")
    return pd.DataFrame({"split": 0, "seed": -1, "image": df["image"], "part": df[column]})


def clive_liqe_splits(df: pd.DataFrame, folder: str | Path) -> pd.DataFrame:
    """The 10 published CLIVE 70/10/20 splits ({1..10}_{train,val,test}.txt), mapped onto the manifest.

    Their paths name the release files ('Images/509.bmp'); ours are 'images/509.webp' (BMP -> lossless WebP).
    """
    folder = Path(folder)
    by_stem = {Path(p).stem: p for p in df["image"]}
    rows = []
    for k in range(1, 11):
        for part in PARTS:
            f = folder / f"{k}_{part}.txt"
            if not f.is_file():
                raise ManifestError(f"CLIVE split file missing: {f}")
            names = pd.read_csv(f, sep="\t", header=None, usecols=[0])[0]
            stems = names.map(lambda s: Path(s).stem)
            unknown = ~stems.isin(by_stem)
            if unknown.any():
                raise ManifestError(f"{f}: image {names[unknown].iloc[0]!r} is not in the CLIVE manifest")
            rows.append(pd.DataFrame({"split": k - 1, "seed": -1, "image": stems.map(by_stem), "part": part}))
    out = pd.concat(rows, ignore_index=True)
    _check_cover(out, df)
    return out


def p1_splits(df: pd.DataFrame, seeds: Sequence[int] = P1_SEEDS, eval_batch: int = 2) -> pd.DataFrame:
    """P1's paper-faithful protocol: per seed, ``torch.utils.data.random_split`` of the rows (in the
    manifest's order, i.e. the order of the published label table) into int(0.8 N) train and the rest test,
    with ``torch.Generator().manual_seed(seed)``, exactly as P1's ``build_datasets``; no val part.

    P1's evaluation loader (train.py l.309-312) has batch 2 and ``drop_last=True``: the images after the last
    whole batch of the test subset's order (the last one of an odd test set) are never scored. They are
    marked ``unused`` here (``eval_batch``; 1 keeps every test image)."""
    import torch
    from torch.utils.data import random_split
    n = len(df)
    images = df["image"].to_numpy()
    rows = []
    for i, s in enumerate(seeds):
        t_len = int(0.8 * n)
        train, test = random_split(range(n), [t_len, n - t_len], generator=torch.Generator().manual_seed(int(s)))
        part = np.empty(n, dtype=object)
        part[list(train.indices)] = "train"
        test_ix = list(test.indices)
        kept = len(test_ix) // eval_batch * eval_batch
        part[test_ix[:kept]] = "test"
        part[test_ix[kept:]] = "unused"
        rows.append(pd.DataFrame({"split": i, "seed": int(s), "image": images, "part": part}))
    return pd.concat(rows, ignore_index=True)


def _check_cover(splits: pd.DataFrame, df: pd.DataFrame) -> None:
    for k, s in splits.groupby("split"):
        if s["image"].duplicated().any() or set(s["image"]) != set(df["image"]):
            raise ManifestError(f"split {k} does not partition the manifest's {len(df)} images")


def make_splits(df: pd.DataFrame, scheme: str, *, n_splits: int = 10, ratios: Sequence[float] = (0.7, 0.1, 0.2),
                seed: int = 0, liqe_folder: str | Path | None = None) -> pd.DataFrame:
    """Dispatch on ``scheme`` (random | official | clive_liqe | p1); the result is checked to partition.

    ``clive_liqe`` gives the first ``n_splits`` of the 10 published splits (seed -1) and, beyond 10, our own
    seeded random splits with ``ratios`` (seed >= 0), e.g. for the power a pooled effect needs."""
    if scheme == "random":
        out = random_splits(df, n_splits=n_splits, ratios=ratios, seed=seed)
    elif scheme == "official":
        out = official_split(df)
    elif scheme == "clive_liqe":
        if liqe_folder is None:
            raise ManifestError("scheme clive_liqe needs splits.liqe_folder (../shared/labels/clive_liqe_splits)")
        out = clive_liqe_splits(df, liqe_folder)
        if n_splits < 10:
            out = out[out["split"] < n_splits].reset_index(drop=True)
        elif n_splits > 10:     # ours beyond the 10 published: seeded random 70/10/20, labelled by seed >= 0
            extra = random_splits(df, n_splits - 10, ratios, seed=seed)
            extra["split"] += 10
            out = pd.concat([out, extra], ignore_index=True)
    elif scheme == "p1":
        out = p1_splits(df)
    else:
        raise ManifestError(f"unknown split scheme {scheme!r}; use random, official, clive_liqe or p1")
    _check_cover(out, df)
    return out


def save_splits(splits: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        splits.to_csv(tmp, index=False, lineterminator="\n")
