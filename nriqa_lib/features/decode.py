"""Decoding images for extraction: 8-bit RGB from any PIL format, EXIF orientation, JPEG draft decoding, and the
datasets that decode each image once for several backbones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps
from torch.utils.data import Dataset

from ..backbones.registry import Preprocess
from ..data.manifest import Manifest, ManifestError
from .transforms import TestTime

__all__ = ["DRAFTABLE", "draft_request", "draft_scale", "jpeg_sizes_of", "drafted", "decode_notes", "load_image",
           "ImageDataset", "SharedDecodeDataset"]


DRAFTABLE = ("squash", "center_crop", "multi_crop")      # views made by resizing the whole image down


def draft_request(size: tuple[int, int], pp: Preprocess, test_time: TestTime, margin: float) -> tuple[int, int] | None:
    """The smallest (w, h) a ``size`` = (W, H) image may be decoded at for this view policy: ``margin`` times
    what the view's resize produces (squash: size x size; center/multi crop: short side size/crop_pct).
    None where the view needs every pixel (native, grid) or ``margin`` is 0."""
    if not margin or test_time not in DRAFTABLE:
        return None
    if test_time == "squash":
        side = int(np.ceil(margin * pp.squash_size))
        return side, side
    r = margin * round(pp.size / pp.crop_pct) / min(size)
    return int(np.ceil(size[0] * r)), int(np.ceil(size[1] * r))


def draft_scale(size: tuple[int, int], request: tuple[int, int] | None) -> int:
    """PIL's JPEG draft choice (JpegImagePlugin.draft): the largest of 8, 4, 2, 1 that leaves the decoded
    image at least ``request``; libjpeg then decodes at 1/scale in the DCT domain (IDCT scaling)."""
    if request is None:
        return 1
    most = min(size[0] // max(request[0], 1), size[1] // max(request[1], 1))
    return next((s for s in (8, 4, 2) if most >= s), 1)            # smaller than the request: full size


def jpeg_sizes_of(paths: list[Path]) -> list[tuple[int, int] | None]:
    """(W, H) of every JPEG (header only; None for other formats and unreadable files)."""
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(im.size if im.format == "JPEG" else None)
        except Exception:
            out.append(None)
    return out


def drafted(pp: Preprocess, test_time: TestTime, margin: float, sizes: list) -> int:
    """How many of the images (``sizes`` from :func:`jpeg_sizes_of`) a backbone would decode in draft mode."""
    return sum(draft_scale(sz, draft_request(sz, pp, test_time, margin)) > 1 for sz in sizes if sz)


ORIENTATION = ExifTags.Base.Orientation      # EXIF tag 0x0112


def decode_notes(manifest: Manifest) -> str:
    """One line on how the dataset's images are decoded: how many carry an EXIF orientation that turns them and
    how many have several frames (animated GIF/WebP, multi-page TIFF: the first frame is used). Headers only."""
    turned = frames = 0
    for p in manifest.paths():
        try:
            with Image.open(p) as im:
                turned += im.getexif().get(ORIENTATION, 1) not in (1, None)
                frames += getattr(im, "n_frames", 1) > 1
        except Exception:
            pass                                   # unreadable files are reported by the manifest check
    rule = ("turned upright (data.exif_transpose: true)" if manifest.exif_transpose
            else "read as stored (data.exif_transpose: false)")
    return (f"{manifest.name}: {turned} of {len(manifest.table)} images carry an EXIF orientation that turns them, "
            f"{rule}; {frames} have several frames (the first frame is used)")


class _Unmappable(ValueError):
    """An image that decodes but whose values have no faithful 8-bit RGB mapping."""


def load_image(path: Path, draft: int = 1, exif: bool = True) -> Image.Image:
    """Decode an image as 8-bit RGB. 16-bit (and 32-bit integer) greyscale is scaled to 8 bits, not clipped
    (PIL's convert('RGB') clips 'I;16' values above 255, turning almost every pixel white); 32-bit float greyscale
    in [0, 1] is scaled by 255 (PIL's cast made it black) and refused in one line outside [0, 1]. ``exif``: turn the
    image upright as its EXIF orientation tag says (``ImageOps.exif_transpose``; ``data.exif_transpose``); false:
    the pixels as stored (P1's and P2's code). An animated GIF/WebP or multi-page TIFF gives its first frame.

    ``draft`` > 1: a JPEG is decoded at 1/draft of its size (PIL's draft mode, libjpeg's scaled IDCT: about
    draft^2 fewer pixels to decode); other formats ignore it. Tolerance: see :func:`draft_request` users."""
    try:
        with Image.open(path) as im:
            if draft > 1 and im.format == "JPEG":
                im.draft("RGB", ((im.size[0] + draft - 1) // draft, (im.size[1] + draft - 1) // draft))
            if exif and im.getexif().get(ORIENTATION, 1) != 1:
                im = ImageOps.exif_transpose(im)                 # a transposed copy, the tag removed
            if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                a = np.asarray(im, dtype=np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
                return Image.fromarray(np.round(a * (255.0 / top)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
            if im.mode == "F":       # 32-bit float: PIL's convert casts the values, so [0, 1] data came out black
                a = np.asarray(im, dtype=np.float64)
                if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
                    raise _Unmappable(f"a 32-bit float image with values in [{np.nanmin(a):g}, {np.nanmax(a):g}] has "
                                      f"no faithful 8-bit mapping (only [0, 1] is read, as x 255); save it as 8- or "
                                      f"16-bit")
                return Image.fromarray(np.round(a * 255.0).astype(np.uint8), "L").convert("RGB")
            return im.convert("RGB")
    except _Unmappable as e:
        raise ManifestError(f"{path}: {e}") from None
    except Exception as e:
        raise ManifestError(f"unreadable or corrupt image {path}: {type(e).__name__}: {e}") from None


class ImageDataset(Dataset):
    def __init__(self, paths: list[Path], transform, exif: bool = True):
        self.paths, self.transform, self.exif = paths, transform, exif

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_image(self.paths[i], exif=self.exif))


class SharedDecodeDataset(Dataset):
    """Image i for several backbones at once: decoded once per distinct JPEG draft scale among them (once
    in all where no draft applies), then each backbone's own transform. Returns {backbone slot: tensor}
    for the slots ``needed(i)`` names (the backbones whose cache misses the chunk of image i)."""

    def __init__(self, paths: list[Path], transforms: list, requests: list, needed, exif: bool = True):
        self.paths, self.transforms, self.requests, self.needed, self.exif = paths, transforms, requests, needed, exif

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[int, torch.Tensor]:
        ks = self.needed(i)
        scales = {k: 1 for k in ks}
        if any(self.requests[k] is not None for k in ks):
            try:
                with Image.open(self.paths[i]) as im:            # header only: size and format
                    size, jpeg = im.size, im.format == "JPEG"
            except Exception:
                size, jpeg = None, False                         # load_image raises the one-line error
            if jpeg:
                scales = {k: draft_scale(size, self.requests[k] and self.requests[k](size)) for k in ks}
        out, decoded = {}, {}
        for k in ks:
            if scales[k] not in decoded:
                decoded[scales[k]] = load_image(self.paths[i], scales[k], self.exif)
            out[k] = self.transforms[k](decoded[scales[k]])
        return out
