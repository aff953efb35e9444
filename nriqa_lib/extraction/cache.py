"""The feature cache's entries (:mod:`nriqa_lib.core.cache` gives the key, the lock and the folder).

The key hashes everything that changes the numbers: backbone identity (name, architecture, weight file digest,
pooling, layer, preprocessing), the test-time view policy and the manifest content (image paths and sha256).
Features are written in chunks (``.npy``) so an interrupted run resumes; a finished entry is ``features.npy`` +
``images.txt`` + ``meta.json``, checked (one row per image, in order) before every use. Partial chunks are kept
per chunk size. The same three files are a features stage's DVC output (:func:`save_feature_set`)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.cache import content_sha256, key_of
from ..core.config import Features
from ..core.io import atomic_path, atomic_write_text
from ..data.manifest import Manifest
from ..features.decode import DRAFTABLE, drafted, jpeg_sizes_of
from ..features.sets import FeatureSet, entry_problem
from ..features.transforms import TestTime

if TYPE_CHECKING:
    from ..backbones.models import Backbone

_FEAT = Features()       # params.yaml's defaults (nriqa_lib.core.config), the one source of them
__all__ = ["cache_key", "missing_chunks", "finished_entry", "assemble_entry"]


def cache_key(backbone: "Backbone", manifest: Manifest, test_time: TestTime, device: torch.device | None = None,
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


def finished_entry(root: Path, images: list[str]) -> FeatureSet | None:
    """The cache entry if it is complete and proves its content (one finite row per image, in images.txt's order,
    the bytes meta.json's sha256 records); None if it is absent; a broken one is removed, said in one line, so
    that it is recomputed, never used."""
    final, meta_f, names = root / "features.npy", root / "meta.json", root / "images.txt"
    if not (final.is_file() and meta_f.is_file()):
        return None
    why, feats, meta = entry_problem(final, meta_f, names, images)
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
