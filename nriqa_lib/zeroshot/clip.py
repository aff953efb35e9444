"""The CLIP side of the zero-shot scores: image and text towers (positional embedding dropped as P2 and pyiqa),
MA-CLIP's per-view embeddings and CLIP-IQA's scores, both kept in the cache (:mod:`nriqa_lib.core.cache`), and every
zero-shot score of one dataset."""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from ..core.cache import chunked, folder as cache_folder, key_of, load_npz, save_npz
from ..data.manifest import Manifest
from ..features.decode import load_image
from ..features.views import make_views
from .scores import ViewEmbeddings, ablation_grid, l2_norm_scores, magnitude_scores, q_sim, score_table

__all__ = ["PosMode", "PROMPT_PAIRS", "PRE_RESIZE", "encode_image", "text_features", "image_tensor",
           "clip_view_embeddings", "clipiqa_scores", "clip_scores", "dataset_scores"]


PosMode = Literal["drop", "interpolate", "keep"]


PROMPT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good image", "bad image"),
    ("Sharp image", "blurry image"),
    ("sharp edges", "blurry edges"),
    ("High resolution image", "low resolution image"),
    ("Noise-free image", "noisy image"),
)


PRE_RESIZE = {"spaq": (448, 448), "agiqa1k": (224, 224)}


@contextlib.contextmanager
def _positional(module: nn.Module, grid: tuple[int, int], mode: PosMode) -> Iterator[None]:
    """Temporarily replace ``module.positional_embedding`` (1 + s*s tokens) for a token grid ``grid``."""
    pe = module.positional_embedding
    s = int(round((pe.shape[0] - 1) ** 0.5))
    if mode == "keep" or (mode == "interpolate" and grid == (s, s)):
        if grid != (s, s):
            raise ValueError(f"positional embedding is for a {s}x{s} grid, input gives {grid[0]}x{grid[1]}")
        yield
        return
    if mode == "drop":
        new = torch.zeros(1 + grid[0] * grid[1], pe.shape[1], dtype=pe.dtype)
    elif mode == "interpolate":
        g = pe[1:].reshape(s, s, -1).permute(2, 0, 1)[None]
        g = F.interpolate(g, size=grid, mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(-1, pe.shape[1])
        new = torch.cat([pe[:1], g])
    else:
        raise ValueError(f"pos must be drop, interpolate or keep, got {mode!r}")
    module._parameters["positional_embedding"] = nn.Parameter(new, requires_grad=False)
    try:
        yield
    finally:
        module._parameters["positional_embedding"] = pe


def encode_image(model: nn.Module, x: torch.Tensor, pos: PosMode = "drop") -> torch.Tensor:
    """Un-normalised image embedding f of an open_clip model (ModifiedResNet or VisionTransformer tower)."""
    v = model.visual
    if hasattr(v, "attnpool"):          # ModifiedResNet: stride 32, attention pool with positional embedding
        h = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
        with _positional(v.attnpool, tuple(h.shape[-2:]), pos):
            return v.attnpool(h)
    if hasattr(v, "conv1") and hasattr(v, "positional_embedding"):   # VisionTransformer
        p = v.conv1.kernel_size
        with _positional(v, (x.shape[-2] // p[0], x.shape[-1] // p[1]), pos):
            return v(x)
    raise TypeError(f"unsupported image tower {type(v).__name__}")


_TEXT_CACHE: dict = {}


def text_features(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]] = PROMPT_PAIRS) -> torch.Tensor:
    """L2-normalised text embeddings, (P, 2, D) for (positive, negative); computed once per model and pairs."""
    key = (id(model), tuple(map(tuple, pairs)))
    if key not in _TEXT_CACHE:
        with torch.inference_mode():
            t = model.encode_text(tokenizer([s for pair in pairs for s in pair])).float()
        _TEXT_CACHE[key] = F.normalize(t, dim=-1).reshape(len(pairs), 2, -1)
    return _TEXT_CACHE[key]


def image_tensor(path: Path, mean, std, pre_resize: tuple[int, int] | None = None,
                 exif: bool = True) -> torch.Tensor:
    """Load an RGB image at native size (or P2's pre-resize, bicubic) as a normalised (C, H, W) tensor."""
    im = load_image(path, exif=exif)
    if pre_resize:
        im = im.resize(tuple(pre_resize), resample=3)
    return T.Normalize(mean, std)(T.functional.to_tensor(im))


def clip_view_embeddings(model: nn.Module, manifest: Manifest, mean, std, pre_resize=None, pos: PosMode = "drop",
                         cache: str | Path | None = None, batch: int = 64, progress: bool = True,
                         identity: dict | None = None, size: int = 224, stride: int = 128, chunk_size: int = 64,
                         max_chunks: int | None = None) -> ViewEmbeddings:
    """MA-CLIP's per-view f for every image, computed once and shared by every ablation.

    ``cache`` is a folder; the entry's file name is a hash of everything that changes its content (dataset
    and manifest content, the model's ``identity`` (name, weights), pre-resize, positional mode, view size,
    stride, mean/std), and a loaded entry whose stored meta differs is recomputed, never used. The images are
    encoded in chunks of ``chunk_size`` saved as they finish (:func:`chunked`): a killed run resumes.
    """
    meta = {"dataset": manifest.name, "manifest": manifest.content_hash, "pos": pos,
            "pre_resize": [int(v) for v in pre_resize] if pre_resize else None, "size": int(size),
            "stride": int(stride), "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            **(identity or {})}
    meta_json = json.dumps(meta, sort_keys=True)
    file = None
    if cache is not None:
        file = Path(cache) / f"views_{key_of(meta_json)}.npz"
        z = load_npz(file, meta_json)
        if z is not None:
            return ViewEmbeddings(z["f"], z["offsets"], meta)
    model.eval()
    paths = manifest.paths()

    def compute(lo: int, hi: int) -> dict[str, np.ndarray]:
        fs, counts = [], []
        with torch.inference_mode():
            for p in paths[lo:hi]:
                v = make_views(image_tensor(p, mean, std, pre_resize, manifest.exif_transpose), size, stride)
                fs.append(torch.cat([encode_image(model, v[i:i + batch], pos) for i in range(0, len(v), batch)])
                          .float().numpy())
                counts.append(len(v))
        return {"f": np.concatenate(fs), "counts": np.asarray(counts, np.int64)}

    parts = chunked(file.with_suffix("") if file is not None else None, meta_json, len(paths), chunk_size, compute,
                    f"MA-CLIP views {manifest.name}", progress, max_chunks)
    counts = np.concatenate([c["counts"] for c in parts])
    out = ViewEmbeddings(np.concatenate([c["f"] for c in parts]), np.concatenate([[0], np.cumsum(counts)]), meta)
    if file is not None:
        save_npz(file, meta_json, f=out.f, offsets=out.offsets)
        shutil.rmtree(file.with_suffix(""), ignore_errors=True)      # the chunks are in the finished entry now
    return out


def clipiqa_scores(model: nn.Module, tokenizer, manifest: Manifest, mean, std, pairs=PROMPT_PAIRS,
                   progress: bool = True, cache: str | Path | None = None, identity: dict | None = None,
                   chunk_size: int = 64, max_chunks: int | None = None) -> np.ndarray:
    """CLIP-IQA as pyiqa computes it: whole image, native size, one pass, attention-pool positional
    embedding dropped (``pos_embedding=False``, STUDY_SPEC.md section 3). With ``cache`` (a folder) the scores are
    saved in chunks keyed like :func:`clip_view_embeddings`'s entries, so a killed run resumes."""
    text = text_features(model, tokenizer, pairs).numpy()
    scale = float(model.logit_scale.exp())
    paths = manifest.paths()
    meta = json.dumps({"kind": "clipiqa", "dataset": manifest.name, "manifest": manifest.content_hash,
                       "pairs": [list(p) for p in pairs], "mean": [float(v) for v in mean],
                       "std": [float(v) for v in std], **(identity or {})}, sort_keys=True)
    folder = Path(cache) / f"clipiqa_{key_of(meta)}" if cache is not None else None

    def compute(lo: int, hi: int) -> dict[str, np.ndarray]:
        out = []
        with torch.inference_mode():
            for p in paths[lo:hi]:
                f = encode_image(model, image_tensor(p, mean, std, exif=manifest.exif_transpose)[None], "drop").float().numpy()
                out.append(q_sim(f, text, scale)[0])
        return {"q": np.asarray(out, np.float64)}

    parts = chunked(folder, meta, len(paths), chunk_size, compute, f"CLIP-IQA {manifest.name}", progress, max_chunks)
    return np.concatenate([c["q"] for c in parts])


def clip_scores(model_name: str, manifest: Manifest, weights: str | None, pre_resize, lambdas, biases,
                alphas, progress: bool = False, pretrained: bool = True) -> dict[str, np.ndarray]:
    """CLIP-IQA, MA-CLIP and the ablation grid of one CLIP model on a dataset, per image in manifest order
    (raises backbones.WeightsError when the weights are absent; ``pretrained=False``: seeded random weights,
    the smoke profile). The view embeddings are cached."""
    import open_clip
    from ..backbones.models import create_backbone
    from ..backbones.registry import REGISTRY
    bb = create_backbone(model_name, pretrained=pretrained, weights=weights)
    model, pp = bb.model, bb.preprocess
    tok = open_clip.get_tokenizer(REGISTRY[model_name].arch)
    views = clip_view_embeddings(model, manifest, pp.mean, pp.std, pre_resize, "drop", cache=cache_folder("maclip"),
                                 identity={"model": model_name, "weights": bb.weight_id}, progress=progress)
    text = text_features(model, tok).numpy()
    st = score_table(views, text, float(model.logit_scale.exp()), ablation_grid(lambdas, biases, alphas))
    out = {"CLIP-IQA": clipiqa_scores(model, tok, manifest, pp.mean, pp.std, progress=progress,
                                      cache=cache_folder("maclip"), identity={"model": model_name, "weights": bb.weight_id})}
    for name, g in st.groupby("config", sort=False):
        out[name] = g.sort_values("index", kind="stable")["score"].to_numpy()
    return out


def dataset_scores(manifest: Manifest, features: dict[str, np.ndarray], clip_models: Sequence[str],
                   weights: dict[str, str], t4, pretrained: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every zero-shot score on one dataset: the magnitude cue (Q_mag, lambda 0.5) and the L2 norm of each
    backbone's pooled ``features`` (rows in manifest order), and each CLIP model's scores where its weights
    exist. Returns (scores: source, score, image, value, mos; notes: model, note for CLIP models not run)."""
    from ..backbones.weights import WeightsError
    images, mos = manifest.table["image"].to_numpy(), manifest.table["mos"].to_numpy()
    frames, notes = [], []

    def add(source, score, values):
        frames.append(pd.DataFrame({"source": source, "score": score, "image": images, "value": values, "mos": mos}))

    for bb, X in features.items():
        add(bb, "Q_mag (lambda 0.5)", magnitude_scores(X, 0.5))
        add(bb, "L2 norm", l2_norm_scores(X))
    for cm in clip_models:
        try:
            for name, vals in clip_scores(cm, manifest, weights.get(cm), t4.pre_resize.get(manifest.name), t4.lambdas,
                                          t4.biases, t4.alphas, pretrained=pretrained).items():
                add(cm, name, vals)
        except WeightsError as e:
            notes.append({"model": cm, "note": f"not run: {e}"})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(notes, columns=["model", "note"])
