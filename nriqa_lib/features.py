"""Batched feature extraction with a content-addressed, resumable cache.

The cache key hashes everything that changes the numbers: backbone identity (name, architecture, weight
file digest, pooling, layer, preprocessing), the test-time view policy and the manifest content (image
paths and sha256). Features are written in chunks (``.npy``) so an interrupted run resumes; a finished
set is ``features.npy`` + ``images.txt`` + ``meta.json``, checked (one row per image, in order) before
every use. Partial chunks are kept per chunk size; a file lock lets two processes share one entry.
"""
from __future__ import annotations

import contextlib
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
from PIL import ExifTags, Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .backbones import Backbone, Preprocess
from .config import Features
from . import dist
from .data.manifest import Manifest, ManifestError
from .device import autocast, loader_kwargs, resolve_device, use_bf16
from .io import atomic_path, atomic_write_text
from .workspace import cache_dir as workspace_cache

_FEAT = Features()       # params.yaml's defaults (nriqa_lib.config), the one source of them

TestTime = Literal["squash", "center_crop", "multi_crop", "native", "grid"]
__all__ = ["build_transform", "view_grid", "make_views", "ImageDataset", "FeatureSet", "cache_key", "extract_features", "extract_many",
           "draft_request", "draft_scale", "jpeg_sizes_of", "SharedDecodeDataset", "save_feature_set",
           "load_feature_set", "load_image", "decode_notes"]


def _interp(name: str):
    from torchvision import transforms as T
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
    # torchvision here, not at import: it pulls in torch._dynamo (1-2 s), which the stages that only read
    # cached features (heads, cross, figures) never need
    from torchvision import transforms as T
    norm = [T.ToTensor(), T.Normalize(pp.mean, pp.std)]
    if test_time == "native":
        return T.Compose(norm)
    if test_time == "grid":
        return T.Compose([*norm, T.Lambda(make_views)])
    if test_time == "squash" and pp.processor:
        return ProcessorTransform(pp.pre_squash, pp.processor)
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


class ProcessorTransform:
    """P1's path for a transformers backbone (train.py + dataset.py): the image squashed with PIL's default filter
    (bicubic) to ``pre_squash``, as the (C, H, W) float tensor of 0-255 values P1's dataset returns, then the
    release's HF image processor called as P1 calls it (``processor(images=..., return_tensors="pt")``). The
    processor is built from its config on first use (in each DataLoader worker)."""

    def __init__(self, pre_squash: int, processor: str):
        self.pre_squash, self.processor, self._proc = int(pre_squash), processor, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_proc": None}

    def __call__(self, im: Image.Image) -> torch.Tensor:
        if self._proc is None:
            import json

            import transformers
            cfg = json.loads(self.processor)
            self._proc = getattr(transformers, cfg["image_processor_type"].removesuffix("Fast")).from_dict(cfg)
        s = self.pre_squash
        if im.size != (s, s):
            im = im.resize((s, s), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.array(im, dtype=np.uint8).transpose(2, 0, 1)).float()
        return self._proc(images=x, return_tensors="pt")["pixel_values"][0]


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


def load_image(path: Path, draft: int = 1, exif: bool = True) -> Image.Image:
    """Decode an image as 8-bit RGB. 16-bit (and 32-bit integer) greyscale is scaled to 8 bits, not clipped
    (PIL's convert('RGB') clips 'I;16' values above 255, turning almost every pixel white). ``exif``: turn the
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
            return im.convert("RGB")
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
    if jpeg_draft and test_time in DRAFTABLE and _drafted(backbone.preprocess, test_time, jpeg_draft,
                                                          jpeg_sizes or jpeg_sizes_of(manifest.paths())):
        ident["jpeg_draft"] = float(jpeg_draft)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    return key, ident


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


def _drafted(pp: Preprocess, test_time: TestTime, margin: float, sizes: list) -> int:
    """How many of the images (``sizes`` from :func:`jpeg_sizes_of`) a backbone would decode in draft mode."""
    return sum(draft_scale(sz, draft_request(sz, pp, test_time, margin)) > 1 for sz in sizes if sz)


def _forward(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    # channels_last: 1.5-2x faster convolutions on CPU (measured with tf_efficientnet_lite0, batch 4-8), the
    # layout cuDNN's tensor-core convolutions want on a GPU
    if x.dim() == 5:                       # (B, V, C, H, W): average the features of the views
        b, v = x.shape[:2]
        return backbone(x.flatten(0, 1).contiguous(memory_format=torch.channels_last)).view(b, v, -1).mean(1)
    return backbone(x.contiguous(memory_format=torch.channels_last))


def extract_features(backbone: Backbone, manifest: Manifest, test_time: TestTime = _FEAT.test_time,
                     batch_size: int = _FEAT.batch_size, threads: int | None = None,
                     cache_dir: str | os.PathLike | None = None, chunk_size: int = _FEAT.chunk_size,
                     progress: bool = True, max_chunks: int | None = None, device: str | torch.device = "cpu",
                     amp: str = "off", workers: int = 0, jpeg_draft: float = _FEAT.jpeg_draft) -> FeatureSet:
    """Features of every manifest image (manifest order); read from the cache when the key matches.
    :func:`extract_many` for one backbone (see there)."""
    return extract_many([backbone], manifest, test_time, batch_size, threads, cache_dir, chunk_size, progress,
                        max_chunks, device, amp, workers, jpeg_draft)[0]


def extract_many(backbones: list[Backbone], manifest: Manifest, test_time: TestTime = _FEAT.test_time,
                 batch_size: int = _FEAT.batch_size, threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None, chunk_size: int = _FEAT.chunk_size,
                 progress: bool = True, max_chunks: int | None = None, device: str | torch.device = "cpu",
                 amp: str = "off", workers: int = 0, jpeg_draft: float = _FEAT.jpeg_draft) -> list[FeatureSet]:
    """Features of every manifest image for each backbone, read from the cache where the key matches; the
    backbones still to compute share one pass over the images (each image decoded once for all of them,
    :class:`SharedDecodeDataset`), with the numbers each would get alone.

    Chunks of ``chunk_size`` images are saved as they finish, so a rerun after an interruption only
    computes the missing chunks. ``max_chunks`` stops early (used to test resuming). ``device``/``amp``/
    ``workers`` as :mod:`nriqa_lib.device` (``run`` params): a GPU, bf16 autocast, decode processes.
    ``jpeg_draft`` > 0: JPEGs are decoded at 1/2, 1/4 or 1/8 scale where that leaves at least ``jpeg_draft``
    times the view's size (:func:`draft_request`); it enters the key only of entries with drafted images.

    Under ``torchrun`` (an initialised process group) rank r computes the missing chunks r, r + W, r + 2W, ...
    of the union over backbones (a padding-free partition, as DistributedSampler's without padding), each
    written atomically; after a barrier rank 0 merges them into the same cache entries one process writes,
    and every rank returns them.
    """
    if threads:
        torch.set_num_threads(int(threads))
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    bf16 = use_bf16(dev, amp)
    entries = []
    sizes = jpeg_sizes_of(manifest.paths()) if jpeg_draft and test_time in DRAFTABLE else None
    for bb in backbones:
        key, ident = cache_key(bb, manifest, test_time, dev, bf16, jpeg_draft, sizes)
        root = Path(cache_dir or workspace_cache("features")) / key
        root.mkdir(parents=True, exist_ok=True)
        entries.append((bb, key, ident, root, root / f"chunks_{int(chunk_size)}"))
    images = list(manifest.table["image"])
    paths = manifest.paths()
    n_chunks = (len(paths) + chunk_size - 1) // chunk_size
    job = dict(paths=paths, test_time=test_time, batch_size=batch_size, chunk_size=chunk_size, dev=dev, amp=amp,
               workers=workers, max_chunks=max_chunks, dataset=manifest.name, jpeg_draft=jpeg_draft,
               exif=manifest.exif_transpose)

    def assemble(e):
        bb, key, ident, root, part = e
        return _assemble(root, part, n_chunks, paths, images, key, ident, bb.name, manifest.name)

    if dist.world() > 1:
        done = dist.broadcast([_finished(e[3], images) is not None for e in entries] if dist.is_main() else None)
        todo = [e for e, d in zip(entries, done) if not d]
        if todo:
            if dist.is_main():
                for bb, key, ident, root, part in todo:
                    atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
                    part.mkdir(exist_ok=True)
            missing = dist.broadcast([_missing(e[4], n_chunks) for e in todo] if dist.is_main() else None)
            mine = sorted(set().union(*map(set, missing)))[dist.rank()::dist.world()]
            _compute_chunks([e[0] for e in todo], [[c for c in m if c in mine] for m in missing],
                            [e[4] for e in todo], progress=progress and dist.is_main(), **job)
            dist.barrier()
            if dist.is_main():
                for e in todo:
                    with FileLock(str(e[3]) + ".lock"):
                        if _finished(e[3], images) is None:
                            assemble(e)
            dist.barrier()
        out = [_finished(e[3], images) for e in entries]
        if any(fs is None for fs in out):
            raise RuntimeError(f"feature cache {entries[out.index(None)][3]}: not complete after every rank finished")
        return out
    # one process fills a cache entry at a time; a second one waits, then reads the finished entry
    # (locks taken in key order, so two processes with overlapping backbone lists cannot deadlock)
    with contextlib.ExitStack() as locks:
        for e in sorted(entries, key=lambda e: e[1]):
            locks.enter_context(FileLock(str(e[3]) + ".lock"))
        out = [_finished(e[3], images) for e in entries]
        todo = [e for e, fs in zip(entries, out) if fs is None]
        if todo:
            for bb, key, ident, root, part in todo:
                atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
                part.mkdir(exist_ok=True)
            _compute_chunks([e[0] for e in todo], [_missing(e[4], n_chunks) for e in todo], [e[4] for e in todo],
                            progress=progress, **job)
            made = iter(assemble(e) for e in todo)
            out = [fs if fs is not None else next(made) for fs in out]
        return out


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
              and len(feats) == len(images) and bool(np.isfinite(feats).all()))
    except (ValueError, OSError):
        ok = False
    if not ok:
        for f in (final, meta_f, names):
            f.unlink(missing_ok=True)
        return None
    return FeatureSet(feats, images, json.loads(meta_f.read_text()))


def _compute_chunks(backbones, todo, parts, paths, test_time, batch_size, chunk_size, dev, amp, workers, progress,
                    max_chunks, dataset, jpeg_draft, exif) -> None:
    """Compute and atomically save, for backbone k, the chunks ``todo[k]`` into ``parts[k]``: one loader over
    the union of the chunks (workers start once; each image decoded once for the backbones that need it);
    batches never straddle a chunk, so a chunk's features do not depend on which chunks were cached or which
    other backbones shared the pass."""
    if max_chunks is not None:
        stop = any(len(t) > max_chunks for t in todo)
        todo = [t[:max_chunks] for t in todo]
    else:
        stop = False
    need = {}
    for k, t in enumerate(todo):
        for c in t:
            need.setdefault(c, []).append(k)
    batches, owner = [], []
    for c in sorted(need):
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, len(paths))
        for b in range(lo, hi, batch_size):
            batches.append(list(range(b, min(b + batch_size, hi))))
            owner.append(c)
    names = " + ".join(bb.name for bb in backbones)
    bar = tqdm(total=sum(map(len, batches)), desc=f"{names} on {dataset}", disable=not progress, unit="img")
    for bb in backbones:
        bb.eval().to(dev, memory_format=torch.channels_last)
    tfs = [build_transform(bb.preprocess, test_time) for bb in backbones]
    reqs = [(lambda size, pp=bb.preprocess: draft_request(size, pp, test_time, jpeg_draft))
            if jpeg_draft and test_time in DRAFTABLE else None for bb in backbones]
    ds = SharedDecodeDataset(paths, tfs, reqs, lambda i: need[i // chunk_size], exif)
    dl = DataLoader(ds, batch_sampler=batches, **loader_kwargs(dev, workers))
    out: dict[int, list[np.ndarray]] = {}
    with torch.inference_mode(), autocast(dev, amp):
        for i, xs in enumerate(dl):
            for k, x in xs.items():
                out.setdefault(k, []).append(_forward(backbones[k], x.to(dev, non_blocking=True)).float().cpu().numpy())
            bar.update(len(batches[i]))
            if i + 1 == len(batches) or owner[i + 1] != owner[i]:
                for k, rows in out.items():
                    with atomic_path(parts[k] / f"chunk_{owner[i]:05d}.npy") as tmp:
                        np.save(tmp, np.concatenate(rows).astype(np.float32))
                out = {}
    bar.close()
    for bb in backbones:
        bb.to("cpu")
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
        i = int(np.flatnonzero(~np.isfinite(feats).all(1))[0])
        shutil.rmtree(part)
        raise FloatingPointError(f"non-finite features from {backbone_name} on {dataset}, first at image {images[i]} "
                                 f"(row {i}); nothing cached (broken weights, or bf16 overflow: run.amp off)")
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
    feats, images = np.load(out / "features.npy"), (out / "images.txt").read_text().splitlines()
    bad = np.flatnonzero(~np.isfinite(feats).all(1)) if feats.ndim == 2 else [0]
    if len(bad) or feats.ndim != 2 or len(feats) != len(images):
        where = f"row {int(bad[0])} ({images[int(bad[0])]}) is not finite" if len(bad) and feats.ndim == 2 else \
            f"shape {feats.shape} for {len(images)} images"
        raise FloatingPointError(f"{out / 'features.npy'}: {where}; not a valid feature set, rerun "
                                 f"`dvc repro -f features@<dataset>`")
    return FeatureSet(feats, images, json.loads((out / "meta.json").read_text()))
