"""The one cache of computed inputs (features, MA-CLIP view embeddings and CLIP-IQA scores, squashed pixels,
fine-tuning checkpoints): an entry's key is a hash of everything that changes its content, it lives under
``cache/<kind>/`` of the user's repository (:func:`nriqa_lib.core.workspace.cache_dir`), it stores that content's
description (meta) and is used only when the stored meta equals the wanted one, it is written to a temporary file
and renamed, and a file lock lets two processes (DVC queue workers) share it.

Hand-written rather than joblib.Memory / DVC's run cache: entries must be resumable by chunk (a GPU job's time limit),
memory-mapped by DataLoader workers (pixels) and shared by ``torchrun`` ranks, which neither offers."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock
from tqdm import tqdm

from .io import atomic_path
from .workspace import cache_dir

__all__ = ["key_of", "content_sha256", "folder", "lock", "load_npz", "save_npz", "chunked"]


def key_of(identity: dict | str) -> str:
    """An entry's key: the first 20 hex digits of the sha256 of its identity (a dict as JSON with sorted keys, or a
    string as it is)."""
    text = identity if isinstance(identity, str) else json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def content_sha256(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (row-major): the checksum an entry records of its content and is
    checked against before every use (a flipped byte or two swapped rows is a different entry)."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def folder(kind: str) -> Path:
    """``cache/<kind>`` of the user's repository (also inside a DVC experiment's temporary copy)."""
    return cache_dir(kind)


def lock(entry: str | Path) -> FileLock:
    """The file lock of an entry (``<entry>.lock`` beside it): one process fills it, the others wait, then read."""
    return FileLock(str(entry) + ".lock")


def _same_meta(stored: str, meta_json: str) -> bool:
    try:
        return json.dumps(json.loads(stored), sort_keys=True) == json.dumps(json.loads(meta_json), sort_keys=True)
    except ValueError:
        return stored == meta_json


def load_npz(file: Path, meta_json: str) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` entry if it exists and its stored ``meta`` equals ``meta_json``; else None
    (the caller recomputes: an entry made for other content is never used)."""
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as z:
        if "meta" not in z.files or not _same_meta(str(z["meta"]), meta_json):
            return None
        return {k: z[k] for k in z.files if k != "meta"}


def save_npz(file: Path, meta_json: str, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` entry with its meta, atomically."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file, suffix=".npz") as tmp:
        np.savez(tmp, meta=meta_json, **arrays)


def chunked(folder: Path | None, meta_json: str, n: int, chunk_size: int,
            compute: Callable[[int, int], dict[str, np.ndarray]], desc: str = "", progress: bool = True,
            max_chunks: int | None = None) -> list[dict[str, np.ndarray]]:
    """``compute(lo, hi)`` over items ``[0, n)`` in chunks of ``chunk_size``, each saved (atomically) to
    ``folder/chunk_<c>_<chunk_size>.npz`` as it finishes, so an interrupted run (a GPU job's time limit, a kill)
    resumes with the missing chunks only; a chunk whose stored meta differs is recomputed. ``folder`` None: nothing
    saved. ``max_chunks`` computes at most that many and then raises InterruptedError (tests of the resume).
    The feature cache has its own chunk loop (one loader over many backbones), with the same entry rules."""
    n_chunks = (n + chunk_size - 1) // chunk_size
    out, done = [], 0
    for c in tqdm(range(n_chunks), desc=desc, disable=not progress):
        lo, hi = c * chunk_size, min(n, (c + 1) * chunk_size)
        f = folder / f"chunk_{c:05d}_{chunk_size}.npz" if folder is not None else None
        part = load_npz(f, meta_json) if f is not None else None
        if part is not None:
            out.append(part)
            continue
        if max_chunks is not None and done >= max_chunks:
            raise InterruptedError(f"stopped after {max_chunks} chunk(s) (max_chunks)")
        part = compute(lo, hi)
        if f is not None:
            save_npz(f, meta_json, **part)
        out.append(part)
        done += 1
    return out
