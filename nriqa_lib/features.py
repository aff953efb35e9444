"""Batched feature extraction with a content-addressed, resumable cache.

The cache key hashes everything that changes the numbers: backbone identity (name, architecture, weight
file digest, pooling, layer, preprocessing), the test-time view policy and the manifest content (image
paths and sha256). Features are written in chunks (``.npy``) so an interrupted run resumes; a finished
set is ``features.npy`` + ``images.txt`` + ``meta.json``, checked (one row per image, in order) before
every use. Partial chunks are kept per chunk size; a file lock lets two processes share one entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from tqdm import tqdm

from .backbones import Backbone, Preprocess
from . import dist
from .data.manifest import Manifest, ManifestError
from .device import autocast, loader_kwargs, resolve_device, use_bf16
from .io import atomic_path, atomic_write_text
from .workspace import cache_dir as workspace_cache

TestTime = Literal["squash", "center_crop", "multi_crop", "native", "grid"]
__all__ = ["build_transform", "view_grid", "make_views", "ImageDataset", "FeatureSet", "cache_key", "extract_features", "save_feature_set",
           "load_feature_set", "load_image"]


def _interp(name: str) -> T.InterpolationMode:
    return {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
            "nearest": T.InterpolationMode.NEAREST}[name]


def view_grid(height: int, width: int, size: int = 224, stride: int = 128) -> list[tuple[int, int]]:
    """Top-left corners of all size x size windows on a stride grid from (0, 0); remainders dropped."""
    if height < size or width < size:
        raise ValueError(f"image {width}x{height} is smaller than the {size}x{size} view; pre-resize it "
                         f"(t4.pre_resize.<dataset>: [w, h]) so both sides are >= {size}")
    return [(t, l) for t in range(0, height - size + 1, stride) for l in range(0, width - size + 1, stride)]


def make_views(x: torch.Tensor, size: int = 224, stride: int = 128) -> torch.Tensor:
    """(C, H, W) normalised image -> (V, C, size, size): the grid crops, then the bilinear global view."""
    crops = [x[:, t:t + size, l:l + size] for t, l in view_grid(x.shape[1], x.shape[2], size, stride)]
    glob = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return torch.stack([*crops, glob])


def build_transform(pp: Preprocess, test_time: TestTime = "squash"):
    """Test-time views used by P1/P2: ``squash`` (whole image resized to size x size, aspect not kept,
    as P1 does), ``center_crop`` (timm eval: short side to size/crop_pct, centre crop), ``multi_crop``
    (same resize, five crops: four corners + centre, features averaged), ``native`` (the image as it is:
    CNNs and dynamic-size ViTs), ``grid`` (P2's MA-CLIP views: 224 crops on a stride-128 grid + the global
    view, features averaged). Returns (C,H,W) or (V,C,H,W)."""
    norm = [T.ToTensor(), T.Normalize(pp.mean, pp.std)]
    if test_time == "native":
        return T.Compose(norm)
    if test_time == "grid":
        return T.Compose([*norm, T.Lambda(make_views)])
    if test_time == "squash":
        return T.Compose([T.Resize((pp.size, pp.size), interpolation=_interp(pp.interpolation), antialias=True), *norm])
    short = int(round(pp.size / pp.crop_pct))
    resize = T.Resize(short, interpolation=_interp(pp.interpolation), antialias=True)
    if test_time == "center_crop":
        return T.Compose([resize, T.CenterCrop(pp.size), *norm])
    if test_time == "multi_crop":
        tail = T.Compose(norm)
        return T.Compose([resize, T.FiveCrop(pp.size), T.Lambda(lambda crops: torch.stack([tail(c) for c in crops]))])
    raise ValueError(f"unknown test_time {test_time!r}; use squash, center_crop or multi_crop")


def load_image(path: Path) -> Image.Image:
    """Decode an image as 8-bit RGB. 16-bit (and 32-bit integer) greyscale is scaled to 8 bits, not clipped
    (PIL's convert('RGB') clips 'I;16' values above 255, turning almost every pixel white)."""
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                a = np.asarray(im, dtype=np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
                return Image.fromarray(np.round(a * (255.0 / top)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
            return im.convert("RGB")
    except Exception as e:
        raise ManifestError(f"unreadable or corrupt image {path}: {type(e).__name__}: {e}") from None


class ImageDataset(Dataset):
    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_image(self.paths[i]))


@dataclass
class FeatureSet:
    features: np.ndarray          # (N, D) float32, rows in manifest order
    images: list[str]
    meta: dict

    @property
    def key(self) -> str:
        return self.meta["key"]


def cache_key(backbone: Backbone, manifest: Manifest, test_time: TestTime, device: torch.device | None = None,
              bf16: bool = False) -> tuple[str, dict]:
    ident = {**backbone.identity(), "test_time": test_time, "memory_format": "channels_last", "dataset": manifest.name,
             "manifest": manifest.content_hash, "n_images": int(len(manifest.table))}
    if bf16 or (device is not None and device.type != "cpu"):     # CPU fp32 keys stay as they always were
        ident.update(device=device.type if device is not None else "cpu", amp="bf16" if bf16 else "off")
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    return key, ident


def _forward(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    # channels_last: 1.5-2x faster convolutions on CPU (measured with tf_efficientnet_lite0, batch 4-8), the
    # layout cuDNN's tensor-core convolutions want on a GPU
    if x.dim() == 5:                       # (B, V, C, H, W): average the features of the views
        b, v = x.shape[:2]
        return backbone(x.flatten(0, 1).contiguous(memory_format=torch.channels_last)).view(b, v, -1).mean(1)
    return backbone(x.contiguous(memory_format=torch.channels_last))


def extract_features(backbone: Backbone, manifest: Manifest, test_time: TestTime = "squash", batch_size: int = 32,
                     threads: int | None = None, cache_dir: str | os.PathLike | None = None, chunk_size: int = 256,
                     progress: bool = True, max_chunks: int | None = None, device: str | torch.device = "cpu",
                     amp: str = "off", workers: int = 0) -> FeatureSet:
    """Features of every manifest image (manifest order); read from the cache when the key matches.

    Chunks of ``chunk_size`` images are saved as they finish, so a rerun after an interruption only
    computes the missing chunks. ``max_chunks`` stops early (used to test resuming). ``device``/``amp``/
    ``workers`` as :mod:`nriqa_lib.device` (``run`` params): a GPU, bf16 autocast, decode processes.

    Under ``torchrun`` (an initialised process group) rank r computes the missing chunks r, r + W, r + 2W, ...
    (a padding-free partition, as DistributedSampler's without padding), each written atomically; after a
    barrier rank 0 merges them into the same cache entry one process writes, and every rank returns it.
    """
    if threads:
        torch.set_num_threads(int(threads))
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    bf16 = use_bf16(dev, amp)
    key, ident = cache_key(backbone, manifest, test_time, dev, bf16)
    root = Path(cache_dir or workspace_cache("features")) / key
    images = list(manifest.table["image"])
    root.mkdir(parents=True, exist_ok=True)
    part = root / f"chunks_{int(chunk_size)}"
    paths = manifest.paths()
    n_chunks = (len(paths) + chunk_size - 1) // chunk_size
    if dist.world() > 1:
        done = dist.broadcast(_finished(root, images) is not None if dist.is_main() else None)
        if not done:
            if dist.is_main():
                atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
                part.mkdir(exist_ok=True)
            todo = dist.broadcast(_missing(part, n_chunks) if dist.is_main() else None)
            _compute_chunks(backbone, paths, todo[dist.rank()::dist.world()], test_time, batch_size, chunk_size,
                            part, dev, amp, workers, progress and dist.is_main(), max_chunks, manifest.name)
            dist.barrier()
            if dist.is_main():
                with FileLock(str(root) + ".lock"):
                    if _finished(root, images) is None:
                        _assemble(root, part, n_chunks, paths, images, key, ident, backbone.name, manifest.name)
            dist.barrier()
        fs = _finished(root, images)
        if fs is None:
            raise RuntimeError(f"feature cache {root}: not complete after every rank finished")
        return fs
    # one process fills a cache entry at a time; a second one waits, then reads the finished entry
    with FileLock(str(root) + ".lock"):
        done = _finished(root, images)
        if done is not None:
            return done
        atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
        part.mkdir(exist_ok=True)
        _compute_chunks(backbone, paths, _missing(part, n_chunks), test_time, batch_size, chunk_size, part, dev,
                        amp, workers, progress, max_chunks, manifest.name)
        return _assemble(root, part, n_chunks, paths, images, key, ident, backbone.name, manifest.name)


def _missing(part: Path, n_chunks: int) -> list[int]:
    """Chunks not yet on disk (partial chunks live in a folder named after the chunk size, so a resume with
    another features.chunk_size never stitches chunks of two sizes together)."""
    return [c for c in range(n_chunks) if not (part / f"chunk_{c:05d}.npy").is_file()]


def _finished(root: Path, images: list[str]) -> FeatureSet | None:
    """The cache entry if it is complete and consistent (one finite row per image, in images.txt's order);
    None if it is absent; a broken one is removed so that it is recomputed, never used."""
    final, meta_f, names = root / "features.npy", root / "meta.json", root / "images.txt"
    if not (final.is_file() and meta_f.is_file()):
        return None
    try:
        feats = np.load(final)
        ok = (names.is_file() and names.read_text().splitlines() == images and feats.ndim == 2
              and len(feats) == len(images))
    except (ValueError, OSError):
        ok = False
    if not ok:
        for f in (final, meta_f, names):
            f.unlink(missing_ok=True)
        return None
    return FeatureSet(feats, images, json.loads(meta_f.read_text()))


def _compute_chunks(backbone, paths, todo, test_time, batch_size, chunk_size, part, dev, amp, workers, progress,
                    max_chunks, dataset) -> None:
    """Compute and atomically save the chunks ``todo`` (one loader over all of them: workers start once;
    batches never straddle a chunk, so a chunk's features do not depend on which chunks were cached)."""
    if max_chunks is not None and len(todo) > max_chunks:
        stop, todo = True, todo[:max_chunks]
    else:
        stop = False
    tf = build_transform(backbone.preprocess, test_time)
    batches, owner = [], []
    for c in todo:
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, len(paths))
        for b in range(lo, hi, batch_size):
            batches.append(list(range(b, min(b + batch_size, hi))))
            owner.append(c)
    bar = tqdm(total=sum(map(len, batches)), desc=f"{backbone.name} on {dataset}", disable=not progress, unit="img")
    backbone.eval().to(dev, memory_format=torch.channels_last)
    dl = DataLoader(ImageDataset(paths, tf), batch_sampler=batches, **loader_kwargs(dev, workers))
    out: list[np.ndarray] = []
    with torch.inference_mode(), autocast(dev, amp):
        for i, x in enumerate(dl):
            out.append(_forward(backbone, x.to(dev, non_blocking=True)).float().cpu().numpy())
            bar.update(len(x))
            if i + 1 == len(batches) or owner[i + 1] != owner[i]:
                with atomic_path(part / f"chunk_{owner[i]:05d}.npy") as tmp:
                    np.save(tmp, np.concatenate(out).astype(np.float32))
                out = []
    bar.close()
    backbone.to("cpu")
    if stop:
        raise InterruptedError(f"stopped after {max_chunks} chunk(s) (max_chunks)")


def _assemble(root, part, n_chunks, paths, images, key, ident, backbone_name, dataset) -> FeatureSet:
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
        raise FloatingPointError(f"non-finite features from {backbone_name} on {dataset}")
    meta = {"key": key, **ident, "dim": int(feats.shape[1])}
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
    atomic_write_text(out / "meta.json", json.dumps(fs.meta, indent=1, sort_keys=True))


def load_feature_set(out_dir: str | os.PathLike) -> FeatureSet:
    out = Path(out_dir)
    for f in ("features.npy", "images.txt", "meta.json"):
        if not (out / f).is_file():
            raise FileNotFoundError(f"feature set incomplete: {out / f} missing (run `dvc repro features`)")
    return FeatureSet(np.load(out / "features.npy"), (out / "images.txt").read_text().splitlines(),
                      json.loads((out / "meta.json").read_text()))
