"""Where every stage reads and writes, and the readers of saved results (no computation here).

splits/<dataset>.csv, features/<dataset>/<backbone>/, results/heads/<dataset>/<backbone>/,
results/cross/<source>__<target>/<backbone>/, results/zeroshot/<dataset>/,
results/finetune/<dataset>/<backbone>/<regime>/ (checkpoints: cache/finetune/<key>/).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .cache import folder as cache_folder
from .errors import ManifestError
from .io import atomic_path

__all__ = ["write_predictions", "load_splits", "splits_path", "features_dir", "heads_dir", "cross_dir", "zeroshot_dir",
           "figures_dir", "finetune_dir",
           "finetune_ckpt", "load_finetune", "load_finetune_history", "timing_dir", "resolution_dir", "load_resolution", "load_predictions",
           "load_shares", "load_cross", "load_zeroshot", "load_split_files", "load_cost", "load_timing", "split_sizes", "single_partition", "NOT_HUMAN_RATED",
           "SYNTHETIC_LABEL", "human_rated"]


def load_splits(path: str | Path) -> pd.DataFrame:
    """A splits stage's output (image, split, part), checked present."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"split file not found: {path} (run `dvc repro splits`)")
    return pd.read_csv(path, dtype={"image": str, "part": str})


def write_predictions(pred: pd.DataFrame, path: str | Path) -> Path:
    """A predictions CSV (heads, cross, resolution and finetune stages: one row per image, split and head), floats
    at 7 significant digits, written atomically; the one writer of the files the ``load_*`` below read."""
    with atomic_path(path) as tmp:
        pred.to_csv(tmp, index=False, float_format="%.7g", lineterminator="\n")
    return Path(path)


def splits_path(dataset: str) -> Path:
    return Path("splits") / f"{dataset}.csv"


def features_dir(dataset: str = "", backbone: str = "") -> Path:
    """features/<dataset>/<backbone> (the features stage's output; without a backbone: the dataset's folder)."""
    return Path("features") / dataset / backbone


def heads_dir(dataset: str, backbone: str = "") -> Path:
    return Path("results") / "heads" / dataset / backbone


def cross_dir(source: str = "", target: str = "", backbone: str = "") -> Path:
    """results/cross/<source>__<target>/<backbone>; without arguments the cross stage's output folder."""
    return Path("results") / "cross" / (f"{source}__{target}" if source else "") / backbone


def zeroshot_dir(dataset: str) -> Path:
    return Path("results") / "zeroshot" / dataset


def resolution_dir(dataset: str) -> Path:
    return Path("results") / "resolution" / dataset


def load_resolution(datasets: Sequence[str], backbones: Sequence[str], policies: Sequence[str]) -> pd.DataFrame:
    """T5 predictions (the heads stage's columns) + a ``policy`` column, long format."""
    dirs = {(d, b, q): resolution_dir(d) / b / q for d in datasets for b in backbones for q in policies}
    return _read_all(dirs, "predictions.csv", ["dataset", "backbone", "policy"], "resolution", dtype={"image": str})


def timing_dir() -> Path:
    """Measured speeds (vary run to run): not a DVC output and not in git, so they never make a rerun differ."""
    return Path("results") / "timing"


def finetune_dir(dataset: str) -> Path:
    return Path("results") / "finetune" / dataset


def finetune_ckpt(key: str, split: int) -> Path:
    return cache_folder("finetune") / key / f"split_{split:03d}.pt"


def figures_dir() -> Path:
    return Path("results") / "figures"


def _read_all(dirs: dict[tuple, Path], filename: str, names: Sequence[str], stage: str, **kw) -> pd.DataFrame:
    """Concatenate <dir>/<filename> for every key, tagged with the key's columns ``names``."""
    frames = []
    for key, d in dirs.items():
        f = d / filename
        if not f.is_file():
            raise FileNotFoundError(f"{f} missing (run `dvc repro {stage}`)")
        df = pd.read_csv(f, **kw)
        for n, v in reversed(list(zip(names, key))):
            df.insert(0, n, v)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def load_split_files(datasets: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each dataset's split file (splits/<dataset>.csv), checked, in the given order."""
    return {d: load_splits(splits_path(d)) for d in datasets}


def load_cost(datasets: Sequence[str]) -> pd.DataFrame:
    """T5's counted cost per policy (results/resolution/<dataset>/cost.csv) of every dataset, with a dataset column."""
    return pd.concat([pd.read_csv(resolution_dir(d) / "cost.csv").assign(dataset=d) for d in datasets],
                     ignore_index=True)


def load_timing(datasets: Sequence[str]) -> dict[str, dict]:
    """Measured speeds (results/timing/resolution_<dataset>.json, outside DVC's outputs), where present."""
    import json
    return {d: json.loads(f.read_text()) for d in datasets if (f := timing_dir() / f"resolution_{d}.json").is_file()}


def load_predictions(datasets: Sequence[str], backbones: Sequence[str], last: bool = False) -> pd.DataFrame:
    """All head predictions of the configured datasets x backbones, long format (``last``: the last epoch's,
    written with ``train.report_last``)."""
    dirs = {(d, b): heads_dir(d, b) for d in datasets for b in backbones}
    return _read_all(dirs, "predictions_last.csv" if last else "predictions.csv", ["dataset", "backbone"], "heads",
                     dtype={"image": str})


def load_shares(datasets: Sequence[str], backbones: Sequence[str]) -> pd.DataFrame:
    """Selection shares (K-way / B_Gated) of the configured datasets x backbones, long format."""
    dirs = {(d, b): heads_dir(d, b) for d in datasets for b in backbones}
    return _read_all(dirs, "selection_shares.csv", ["dataset", "backbone"], "heads")


def load_finetune(datasets: Sequence[str], backbones: Sequence[str], regimes: Sequence[str],
                  last: bool = False) -> pd.DataFrame:
    """Fine-tuned predictions (the heads stage's columns) + a ``regime`` column, long format (``last``: the last
    epoch's, written with ``train.report_last``)."""
    dirs = {(d, b, r): finetune_dir(d) / b / r for d in datasets for b in backbones for r in regimes}
    if not dirs:
        return pd.DataFrame(columns=["dataset", "backbone", "regime", "head", "split", "part", "image", "pred", "mos"])
    return _read_all(dirs, "predictions_last.csv" if last else "predictions.csv", ["dataset", "backbone", "regime"],
                     "finetune", dtype={"image": str})


def load_finetune_history(datasets: Sequence[str], backbones: Sequence[str], regimes: Sequence[str]) -> pd.DataFrame:
    """Every fine-tuned epoch's val/test SRCC (and PLCC) from each run.json's ``history``: dataset, backbone, regime,
    head, split, epoch, val_srcc, test_srcc, ... (a non-finite SRCC is written as null and read as NaN)."""
    import json
    rows = []
    for d in datasets:
        for b in backbones:
            for r in regimes:
                f = finetune_dir(d) / b / r / "run.json"
                if not f.is_file():
                    raise FileNotFoundError(f"{f} missing (run `dvc repro finetune`)")
                rows += [{"dataset": d, "backbone": b, "regime": r, **h} for h in json.loads(f.read_text())["history"]]
    df = pd.DataFrame(rows, columns=None if rows else ["dataset", "backbone", "regime", "head", "split", "epoch",
                                                        "val_srcc", "test_srcc"])
    for c in df.columns.intersection(["val_srcc", "test_srcc", "val_plcc", "test_plcc"]):
        df[c] = pd.to_numeric(df[c]).astype(float)          # null -> NaN
    return df


def load_cross(pairs: Sequence[tuple[str, str]], backbones: Sequence[str]) -> pd.DataFrame:
    """Cross-dataset predictions on the whole target set; dataset column 'source->target'."""
    dirs = {(f"{a}->{b}", bb): cross_dir(a, b, bb) for a, b in pairs for bb in backbones}
    return _read_all(dirs, "predictions.csv", ["dataset", "backbone"], "cross", dtype={"image": str})


def load_zeroshot(datasets: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores: dataset, source, score, image, value, mos; notes: dataset, model, note) of the zero-shot stage."""
    dirs = {(d,): zeroshot_dir(d) for d in datasets}
    scores = _read_all(dirs, "scores.csv", ["dataset"], "zeroshot", dtype={"image": str})
    notes = _read_all(dirs, "notes.csv", ["dataset"], "zeroshot")
    return scores, notes


def split_sizes(splits: pd.DataFrame) -> tuple[int, int]:
    """Mean (train, test) sizes over splits, for the Nadeau-Bengio correction."""
    c = splits.groupby(["split", "part"]).size().unstack(fill_value=0)
    return int(round(c["train"].mean())), int(round(c["test"].mean()))


def single_partition(dataset: str) -> bool:
    """Whether the dataset's split file holds one partition (its per-'split' rows are training seeds)."""
    return load_splits(splits_path(dataset))["split"].nunique() == 1


# Datasets whose scores are not human opinions (their card in data_manifests/ says so; tests/analysis/test_pooled.py
# checks the two agree). Pooled verdicts on the papers' claims pool human-rated datasets only; these are shown
# beside them, labelled.
NOT_HUMAN_RATED = frozenset({"synthetic"})
SYNTHETIC_LABEL = "synthetic set (100 x SSIM proxy, not human opinions)"


def human_rated(dataset: str) -> bool:
    """Whether ``dataset``'s scores are human opinions (MOS/DMOS), i.e. not in :data:`NOT_HUMAN_RATED`."""
    return dataset not in NOT_HUMAN_RATED
