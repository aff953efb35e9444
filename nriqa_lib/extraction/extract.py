"""Batched feature extraction into the feature cache (:mod:`nriqa_lib.extraction.cache`): one pass over the images for
every backbone still to compute, resumable by chunks, shared between processes by a file lock and between
``torchrun`` ranks by chunk."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..backbones.models import Backbone
from ..core import cache, dist
from ..core.progress import Progress
from ..core.config import Features
from ..core.device import autocast, loader_kwargs, resolve_device, use_bf16
from ..core.io import atomic_path, atomic_write_text
from ..data.manifest import Manifest
from .cache import assemble_entry, cache_key, finished_entry, missing_chunks
from ..features.sets import FeatureSet
from ..features.decode import DRAFTABLE, SharedDecodeDataset, draft_request, jpeg_sizes_of
from ..features.transforms import TestTime, build_transform

_FEAT = Features()       # params.yaml's defaults (nriqa_lib.core.config), the one source of them
__all__ = ["extract_features", "extract_many"]


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
    ``workers`` as :mod:`nriqa_lib.core.device` (``run`` params): a GPU, bf16 autocast, decode processes.
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
        root = Path(cache_dir or cache.folder("features")) / key
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
        return assemble_entry(root, part, n_chunks, paths, images, key, ident, bb.name, manifest.name)

    if dist.world() > 1:
        done = dist.broadcast([finished_entry(e[3], images) is not None for e in entries] if dist.is_main() else None)
        todo = [e for e, d in zip(entries, done) if not d]
        if todo:
            if dist.is_main():
                for bb, key, ident, root, part in todo:
                    atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
                    part.mkdir(exist_ok=True)
            missing = dist.broadcast([missing_chunks(e[4], n_chunks) for e in todo] if dist.is_main() else None)
            mine = sorted(set().union(*map(set, missing)))[dist.rank()::dist.world()]
            _compute_chunks([e[0] for e in todo], [[c for c in m if c in mine] for m in missing],
                            [e[4] for e in todo], progress=progress and dist.is_main(), **job)
            dist.barrier()
            if dist.is_main():
                for e in todo:
                    with cache.lock(e[3]):
                        if finished_entry(e[3], images) is None:
                            assemble(e)
            dist.barrier()
        out = [finished_entry(e[3], images) for e in entries]
        if any(fs is None for fs in out):
            raise RuntimeError(f"feature cache {entries[out.index(None)][3]}: not complete after every rank finished")
        return out
    # one process fills a cache entry at a time; a second one waits, then reads the finished entry
    # (locks taken in key order, so two processes with overlapping backbone lists cannot deadlock)
    with contextlib.ExitStack() as locks:
        for e in sorted(entries, key=lambda e: e[1]):
            locks.enter_context(cache.lock(e[3]))
        out = [finished_entry(e[3], images) for e in entries]
        todo = [e for e, fs in zip(entries, out) if fs is None]
        if todo:
            for bb, key, ident, root, part in todo:
                atomic_write_text(root / "identity.json", json.dumps(ident, indent=1, sort_keys=True))
                part.mkdir(exist_ok=True)
            _compute_chunks([e[0] for e in todo], [missing_chunks(e[4], n_chunks) for e in todo], [e[4] for e in todo],
                            progress=progress, **job)
            made = iter(assemble(e) for e in todo)
            out = [fs if fs is not None else next(made) for fs in out]
        return out


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
    bar = (Progress(sum(map(len, batches)), f"features: {len(backbones)} backbone(s) on {dataset}", "img")
           if progress else None)
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
            if bar is not None:
                bar.update(len(batches[i]))
            if i + 1 == len(batches) or owner[i + 1] != owner[i]:
                for k, rows in out.items():
                    with atomic_path(parts[k] / f"chunk_{owner[i]:05d}.npy") as tmp:
                        np.save(tmp, np.concatenate(rows).astype(np.float32))
                out = {}
    for bb in backbones:
        bb.to("cpu")
    if stop:
        raise InterruptedError(f"stopped after {max_chunks} chunk(s) (max_chunks)")
