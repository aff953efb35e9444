"""Decode once for fine-tuning: each dataset's images squashed to ``size`` x ``size`` (aspect not kept, as P1's
dataset.py l.188 ``image.resize((512, 512))``) as one uint8 array on disk, memory-mapped, built once per
(dataset content, size, resize filter) and read by every backbone, head, split and epoch.

P1 squashes every image once and keeps it in memory; decoding SPAQ's 12 MP photos again every epoch was 70 of the
paper profile's 81 estimated GPU-hours. The pixels are exactly the ones a decode + squash gives (PIL's resize of
:func:`nriqa_lib.features.load_image`; torchvision's Resize on a PIL image is that same call, and a resize to the
image's own size is a copy), so fine-tuning sees the same tensors as before (tests/training/test_finetune.py).

The entry is content-keyed like the feature cache (the manifest's rows and images' sha256, size, filter) and
written to a temporary file, then renamed: a killed build leaves nothing that could be read as finished.
A hand-written cache (not safetensors/DVC): the array must be memory-mapped by DataLoader workers, which
``np.load(mmap_mode="r")`` gives; the meta beside it is checked on every use.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..core import dist
from ..core.cache import key_of
from ..core.io import remove_stale_temps, temp_prefix
from ..data.manifest import Manifest
from ..features.decode import load_image

__all__ = ["squash", "squashed_images", "SquashedDataset", "RESAMPLE"]

RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST}


def squash(path: Path, size: int, interpolation: str = "bicubic", exif: bool = True) -> np.ndarray:
    """One image decoded and squashed to (size, size, 3) uint8 with PIL's filter (P1: bicubic, PIL's default)."""
    im = load_image(path, exif=exif)
    if im.size != (size, size):
        im = im.resize((size, size), RESAMPLE[interpolation])
    return np.array(im, dtype=np.uint8)         # writable: DataLoader turns it into a tensor


class _Decode(Dataset):
    def __init__(self, paths, size, interpolation, exif):
        self.paths, self.size, self.interpolation, self.exif = paths, size, interpolation, exif

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        return i, squash(self.paths[i], self.size, self.interpolation, self.exif)


def _key(manifest: Manifest, size: int, interpolation: str) -> tuple[str, str]:
    meta = json.dumps({"dataset": manifest.name, "manifest": manifest.content_hash, "size": int(size),
                       "interpolation": interpolation, "squash": "PIL resize of load_image, uint8 HWC"},
                      sort_keys=True)
    return key_of(meta), meta


def squashed_images(manifest: Manifest, size: int, interpolation: str, cache: str | os.PathLike,
                    workers: int = 0, progress: bool = True) -> np.ndarray:
    """(N, size, size, 3) uint8 memmap of the manifest's images in its order, built on first use (``workers``
    decode processes; under torchrun rank 0 builds, the others wait) and then only read."""
    key, meta = _key(manifest, size, interpolation)
    root = Path(cache)
    file, info = root / f"pixels_{key}.npy", root / f"pixels_{key}.json"
    n = len(manifest.table)
    if dist.is_main() and not (file.is_file() and info.is_file() and info.read_text() == meta):
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(root, file.name)              # a killed build's (up to N x size^2 x 3 bytes)
        tmp = root / f"{temp_prefix(file.name)}npy"
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
            loader = DataLoader(_Decode(manifest.paths(), size, interpolation, manifest.exif_transpose), batch_size=None, num_workers=workers)
            from tqdm import tqdm
            for i, a in tqdm(loader, total=n, desc=f"squash {manifest.name} to {size}px", disable=not progress):
                arr[int(i)] = a.numpy() if isinstance(a, torch.Tensor) else a
            arr.flush()
            del arr
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)
        info.write_text(meta)
    dist.barrier()
    arr = np.load(file, mmap_mode="r")
    if arr.shape != (n, size, size, 3) or info.read_text() != meta:
        raise RuntimeError(f"pixel cache {file}: shape {arr.shape} or meta does not match; delete it and rerun")
    return arr


class SquashedDataset(Dataset):
    """Image i of a :func:`squashed_images` array through ``transform`` (the backbone's, as for decoded images)."""

    def __init__(self, pixels: np.ndarray, transform):
        self.pixels, self.transform = pixels, transform

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(Image.fromarray(np.asarray(self.pixels[i])))
