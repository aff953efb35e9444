"""A feature set (the DVC output of a features stage and a finished cache entry): ``features.npy`` (N x D, rows in
manifest order), ``images.txt`` and ``meta.json`` (its key, identity and content sha256), checked before every use.
Torch-free: the stages that only read features (heads, cross, zeroshot, figures) load them without the extraction
code (:mod:`.extract`, :mod:`nriqa_lib.backbones.models`)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.cache import content_sha256
from ..core.io import atomic_path, atomic_write_text

__all__ = ["FeatureSet", "entry_problem", "save_feature_set", "load_feature_set"]


@dataclass
class FeatureSet:
    features: np.ndarray          # (N, D) float32, rows in manifest order
    images: list[str]
    meta: dict

    @property
    def key(self) -> str:
        return self.meta["key"]


def entry_problem(final: Path, meta_f: Path, names: Path, images: list[str]
                  ) -> tuple[str | None, np.ndarray | None, dict]:
    """(what is wrong with the entry, "<file>: <what>", or None; its features; its meta): it must load, list
    ``images`` in order, hold one finite row per image and match the checksum its meta.json records."""
    try:
        meta = json.loads(meta_f.read_text())
        if not isinstance(meta, dict):
            return f"{meta_f}: not a JSON object", None, {}
    except (ValueError, OSError) as e:
        return f"{meta_f}: unreadable ({type(e).__name__})", None, {}
    try:
        feats = np.load(final, allow_pickle=False)
    except (ValueError, OSError) as e:
        return f"{final}: unreadable ({type(e).__name__})", None, {}
    if not names.is_file() or names.read_text().splitlines() != images:
        return f"{names}: does not list the manifest's images in order", None, meta
    if feats.ndim != 2 or len(feats) != len(images):
        return f"{final}: shape {feats.shape} for {len(images)} images", None, meta
    if not np.isfinite(feats).all():
        i = int(np.flatnonzero(~np.isfinite(feats).all(1))[0])
        return f"{final}: row {i} ({images[i]}) is not finite", None, meta
    if meta.get("sha256") != content_sha256(feats):
        return (f"{meta_f}: no content checksum (written before checksums)" if "sha256" not in meta
                else f"{final}: content does not match the sha256 in meta.json"), None, meta
    return None, feats, meta


def save_feature_set(fs: FeatureSet, out_dir: str | os.PathLike) -> None:
    """Write ``features.npy``, ``images.txt`` and ``meta.json`` (the DVC output of a features stage)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "features.npy") as tmp:
        np.save(tmp, fs.features)
    atomic_write_text(out / "images.txt", "\n".join(fs.images) + "\n")
    meta = {**fs.meta, "sha256": content_sha256(fs.features)}
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1, sort_keys=True))


def load_feature_set(out_dir: str | os.PathLike) -> FeatureSet:
    """A features stage's output, checked as a cache entry is (:func:`entry_problem`); a bad one is one line."""
    out = Path(out_dir)
    for f in ("features.npy", "images.txt", "meta.json"):
        if not (out / f).is_file():
            raise FileNotFoundError(f"feature set incomplete: {out / f} missing (run `dvc repro features`)")
    images = (out / "images.txt").read_text().splitlines()
    why, feats, meta = entry_problem(out / "features.npy", out / "meta.json", out / "images.txt", images)
    if why:
        raise FloatingPointError(f"{why}; not a valid feature set, rerun `dvc repro -f features@<dataset>`")
    return FeatureSet(feats, images, meta)
