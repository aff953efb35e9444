"""The feature cache's entries (:mod:`nriqa_lib.core.cache` gives the key, the lock and the folder).

The key hashes everything that changes the numbers: backbone identity (name, architecture, weight file digest,
pooling, layer, preprocessing), the test-time view policy and the manifest content (image paths and sha256).
Features are written in chunks (``.npy``) so an interrupted run resumes; a finished entry is ``features.npy`` +
``images.txt`` + ``meta.json``, checked (one row per image, in order) before every use. Partial chunks are kept
per chunk size. The same three files are a features stage's DVC output (:func:`save_feature_set`)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backbones import Backbone
from ..core.cache import content_sha256, key_of
from ..core.config import Features
from ..core.io import atomic_path, atomic_write_text
from ..data.manifest import Manifest
from .decode import DRAFTABLE, drafted, jpeg_sizes_of
from .transforms import TestTime

_FEAT = Features()       # params.yaml's defaults (nriqa_lib.core.config), the one source of them
__all__ = ["FeatureSet", "cache_key", "missing_chunks", "finished_entry", "assemble_entry", "save_feature_set",
           "load_feature_set"]


@dataclass
class FeatureSet:
    features: np.ndarray          # (N, D) float32, rows in manifest order
    images: list[str]
    meta: dict

    @property
    def key(self) -> str:
        return self.meta["key"]


def cache_key(backbone: Backbone, manifest: Manifest, test_time: TestTime, device: torch.device | None = None,
              bf16: bool = False, jpeg_draft: float = _FEAT.jpeg_draft,
              jpeg_sizes: list[tuple[int, int] | None] | None = None) -> tuple[str, dict]:
    """The cache entry's key and identity. ``jpeg_draft`` enters only where it changes a decode (some image is
    a JPEG large enough to be drafted), so entries without drafted images keep their keys; ``jpeg_sizes``:
    the images' :func:`jpeg_sizes_of` when the caller has them."""
    ident = {**backbone.identity(), "test_time": test_time, "memory_format": "channels_last", "dataset": manifest.name,
             "manifest": manifest.content_hash, "n_images": int(len(manifest.table))}
    if bf16 or (device is not None and device.type != "cpu"):     # CPU fp32 keys stay as they always were
        ident.update(device=device.type if device is not None else "cpu", amp="bf16" if bf16 else "off")
    if jpeg_draft and test_time in DRAFTABLE and drafted(backbone.preprocess, test_time, jpeg_draft,
                                                          jpeg_sizes or jpeg_sizes_of(manifest.paths())):
        ident["jpeg_draft"] = float(jpeg_draft)
    key = key_of(ident)
    return key, ident


def missing_chunks(part: Path, n_chunks: int) -> list[int]:
    """Chunks not yet on disk (partial chunks live in a folder named after the chunk size, so a resume with
    another features.chunk_size never stitches chunks of two sizes together)."""
    return [c for c in range(n_chunks) if not (part / f"chunk_{c:05d}.npy").is_file()]


def _problem(final: Path, meta_f: Path, names: Path, images: list[str]) -> tuple[str | None, np.ndarray | None, dict]:
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


def finished_entry(root: Path, images: list[str]) -> FeatureSet | None:
    """The cache entry if it is complete and proves its content (one finite row per image, in images.txt's order,
    the bytes meta.json's sha256 records); None if it is absent; a broken one is removed, said in one line, so
    that it is recomputed, never used."""
    final, meta_f, names = root / "features.npy", root / "meta.json", root / "images.txt"
    if not (final.is_file() and meta_f.is_file()):
        return None
    why, feats, meta = _problem(final, meta_f, names, images)
    if why:
        print(f"feature cache: {why}; entry removed, recomputing", file=sys.stderr)
        for f in (final, meta_f, names):
            f.unlink(missing_ok=True)
        return None
    return FeatureSet(feats, images, meta)


def assemble_entry(root, part, n_chunks, paths, images, key, ident, backbone_name, dataset) -> FeatureSet:
    """Merge the chunks into the finished entry (features.npy, images.txt, meta.json), checked first."""
    chunk_size = int(part.name.split("_")[1])
    chunks = [np.load(part / f"chunk_{c:05d}.npy") for c in range(n_chunks)]
    bad = [c for c, a in enumerate(chunks) if len(a) != len(paths[c * chunk_size:(c + 1) * chunk_size])]
    if bad:
        shutil.rmtree(part)
        raise RuntimeError(f"feature cache {part}: chunk {bad[0]} has the wrong number of rows; removed the partial "
                           f"entry, rerun to recompute it")
    feats = np.concatenate(chunks)
    if not np.isfinite(feats).all():
        i = int(np.flatnonzero(~np.isfinite(feats).all(1))[0])
        shutil.rmtree(part)
        raise FloatingPointError(f"non-finite features from {backbone_name} on {dataset}, first at image {images[i]} "
                                 f"(row {i}); nothing cached (broken weights, or bf16 overflow: run.amp off)")
    meta = {"key": key, **ident, "dim": int(feats.shape[1]), "sha256": content_sha256(feats)}
    atomic_write_text(root / "images.txt", "\n".join(images) + "\n")
    with atomic_path(root / "features.npy") as tmp:
        np.save(tmp, feats)
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
    shutil.rmtree(part, ignore_errors=True)
    for old in root.glob("chunks_*"):          # partial chunks of another chunk size are now useless
        shutil.rmtree(old, ignore_errors=True)
    return FeatureSet(feats, images, meta)


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
    """A features stage's output, checked as a cache entry is (:func:`_problem`); a bad one is one line."""
    out = Path(out_dir)
    for f in ("features.npy", "images.txt", "meta.json"):
        if not (out / f).is_file():
            raise FileNotFoundError(f"feature set incomplete: {out / f} missing (run `dvc repro features`)")
    images = (out / "images.txt").read_text().splitlines()
    why, feats, meta = _problem(out / "features.npy", out / "meta.json", out / "images.txt", images)
    if why:
        raise FloatingPointError(f"{why}; not a valid feature set, rerun `dvc repro -f features@<dataset>`")
    return FeatureSet(feats, images, meta)
