"""Training-free IQA: CLIP-IQA, MA-CLIP (P2, arXiv 2511.09948) and the magnitude cue on any backbone.

Every step and constant follows STUDY_SPEC.md section 3 (P2's official code):
- views: all 224x224 windows on a stride-128 grid from (0, 0) (remainders dropped) + one global view,
  a bilinear resize of the whole normalised image to 224x224;
- Q_sim = mean over antonym pairs of softmax(s cos(f, t+), s cos(f, t-))[+], s = exp(logit_scale);
- Q_mag = mean_d ((x_d + 1)^lambda - 1) / lambda, x = |f| / (std(|f|, ddof=1) + 1e-6), log(1 + x) at lambda 0;
- (w_sim, w_mag) = softmax(b_sim + alpha delta, b_mag - alpha delta), delta = Q_sim - Q_mag;
  Q_view = w_sim Q_sim + w_mag Q_mag; image score = mean over views.
f is the image embedding before L2 normalisation. P2 drops the positional embedding of the CLIP
image tower (``pos="drop"``); so does the CLIP-IQA baseline, which runs the whole image at native size in
one pass (pyiqa's ``CLIPIQA.forward`` calls the image tower with ``pos_embedding=False``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T
from tqdm import tqdm

from .data.manifest import Manifest
from .features import load_image, make_views, view_grid  # noqa: F401 (view_grid: public here too)
from .io import atomic_path
from .workspace import cache_dir

PosMode = Literal["drop", "interpolate", "keep"]
PROMPT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good image", "bad image"),
    ("Sharp image", "blurry image"),
    ("sharp edges", "blurry edges"),
    ("High resolution image", "low resolution image"),
    ("Noise-free image", "noisy image"),
)
# P2's per-dataset pre-resize (width, height); others stay at native size
PRE_RESIZE = {"spaq": (448, 448), "agiqa1k": (224, 224)}

__all__ = ["PROMPT_PAIRS", "PRE_RESIZE", "view_grid", "make_views", "encode_image", "text_features", "q_sim", "q_mag",
           "fuse", "maclip_views", "MAClipConfig", "ablation_grid", "magnitude_scores", "l2_norm_scores",
           "image_tensor", "clip_view_embeddings", "clipiqa_scores", "chunked", "ViewEmbeddings", "score_table", "clip_scores",
           "dataset_scores"]


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


def q_sim(f: np.ndarray, text: np.ndarray, scale: float) -> np.ndarray:
    """CLIP-IQA: per view, mean over pairs of the softmax probability of the positive prompt. f: (V, D)."""
    f = np.asarray(f, np.float64)
    fn = f / np.linalg.norm(f, axis=-1, keepdims=True)
    logits = scale * np.einsum("vd,pkd->vpk", fn, np.asarray(text, np.float64))
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return (e[..., 0] / e.sum(-1)).mean(-1)


def q_mag(f: np.ndarray, lam: float = 0.5, eps: float = 1e-6) -> np.ndarray:
    """P2's magnitude cue: mean shifted Box-Cox of |f| / (unbiased std(|f|) + eps), per row. Scale-invariant."""
    a = np.abs(np.asarray(f, np.float64))
    x = a / (a.std(-1, ddof=1, keepdims=True) + eps)
    y = np.log1p(x) if lam == 0 else ((x + 1.0) ** lam - 1.0) / lam
    return y.mean(-1)


def fuse(qs: np.ndarray, qm: np.ndarray, b_sim: float = 1.0, b_mag: float = 0.6, alpha: float = 1.0):
    """Adaptive fusion: w = softmax(b_sim + alpha delta, b_mag - alpha delta); returns (Q, w_sim)."""
    d = np.asarray(qs) - np.asarray(qm)
    w_sim = 1.0 / (1.0 + np.exp(-((b_sim + alpha * d) - (b_mag - alpha * d))))
    return w_sim * qs + (1 - w_sim) * qm, w_sim


@dataclass(frozen=True)
class MAClipConfig:
    lam: float = 0.5
    b_sim: float = 1.0
    b_mag: float = 0.6
    alpha: float = 1.0
    mag: Literal["boxcox", "l2"] = "boxcox"     # l2: Q_mag replaced by the raw L2 norm (ablation)
    mix: Literal["adaptive", "fixed", "sim", "mag"] = "adaptive"
    level: Literal["view", "image"] = "view"    # fuse per view (P2) or on image-level averages


def maclip_views(f: np.ndarray, text: np.ndarray, scale: float, cfg: MAClipConfig = MAClipConfig()) -> dict:
    """MA-CLIP on one image's view embeddings f (V, D): score and the per-view Q_sim, Q_mag, w_sim."""
    qs = q_sim(f, text, scale)
    qm = q_mag(f, cfg.lam) if cfg.mag == "boxcox" else np.linalg.norm(np.asarray(f, np.float64), axis=-1)
    if cfg.level == "image":
        qs_i, qm_i = qs.mean(keepdims=True), qm.mean(keepdims=True)
    else:
        qs_i, qm_i = qs, qm
    if cfg.mix == "adaptive":
        qv, w = fuse(qs_i, qm_i, cfg.b_sim, cfg.b_mag, cfg.alpha)
    elif cfg.mix == "fixed":
        qv, w = 0.5 * qs_i + 0.5 * qm_i, np.full_like(qs_i, 0.5)
    elif cfg.mix == "sim":
        qv, w = qs_i, np.ones_like(qs_i)
    else:
        qv, w = qm_i, np.zeros_like(qs_i)
    return {"score": float(qv.mean()), "q_sim": qs, "q_mag": qm, "w_sim": w, "q_view": qv}


def ablation_grid(lams: Sequence[float] = (0, 0.3, 0.5, 0.7, 1.0), biases: Sequence[float] = (0.0, 0.4),
                  alphas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0)) -> dict[str, MAClipConfig]:
    """P2's defaults plus our ablations (STUDY_SPEC.md section 3, 'Beyond P2'), by readable name."""
    base = MAClipConfig()
    grid = {"MA-CLIP (P2)": base, "Q_sim only (CLIP-IQA views)": MAClipConfig(mix="sim"),
            "Q_mag only": MAClipConfig(mix="mag"), "fixed 0.5/0.5": MAClipConfig(mix="fixed"),
            "Q_mag -> L2 norm": MAClipConfig(mag="l2"), "fusion on image averages": MAClipConfig(level="image")}
    for lam in lams:
        grid[f"lambda={lam:g}"] = MAClipConfig(lam=float(lam))
    for b in biases:
        grid[f"b_sim-b_mag={b:g}"] = MAClipConfig(b_sim=base.b_mag + float(b))
    for a in alphas:
        grid[f"alpha={a:g}"] = MAClipConfig(alpha=float(a))
    return grid


def magnitude_scores(features: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """The magnitude cue as a zero-shot score on any backbone's pooled features (N, D)."""
    return q_mag(features, lam)


def l2_norm_scores(features: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(features, np.float64), axis=-1)


def image_tensor(path: Path, mean, std, pre_resize: tuple[int, int] | None = None,
                 exif: bool = True) -> torch.Tensor:
    """Load an RGB image at native size (or P2's pre-resize, bicubic) as a normalised (C, H, W) tensor."""
    im = load_image(path, exif=exif)
    if pre_resize:
        im = im.resize(tuple(pre_resize), resample=3)
    return T.Normalize(mean, std)(T.functional.to_tensor(im))


@dataclass
class ViewEmbeddings:
    """Per-view embeddings of a whole dataset: rows of ``f`` for image i are offsets[i]:offsets[i+1]."""
    f: np.ndarray
    offsets: np.ndarray
    meta: dict

    def image(self, i: int) -> np.ndarray:
        return self.f[self.offsets[i]:self.offsets[i + 1]]

    def __len__(self) -> int:
        return len(self.offsets) - 1


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
        file = Path(cache) / f"views_{hashlib.sha256(meta_json.encode()).hexdigest()[:20]}.npz"
        if file.is_file():
            z = np.load(file, allow_pickle=False)
            if json.dumps(json.loads(str(z["meta"])), sort_keys=True) == meta_json:
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
        with atomic_path(file, suffix=".npz") as tmp:
            np.savez(tmp, f=out.f, offsets=out.offsets, meta=meta_json)
        shutil.rmtree(file.with_suffix(""), ignore_errors=True)      # the chunks are in the finished entry now
    return out


def chunked(folder: Path | None, meta_json: str, n: int, chunk_size: int, compute, desc: str = "",
            progress: bool = True, max_chunks: int | None = None) -> list[dict[str, np.ndarray]]:
    """``compute(lo, hi)`` over items ``[0, n)`` in chunks of ``chunk_size``, each saved (atomically) to
    ``folder/chunk_<c>.npz`` as it finishes, so an interrupted run (a GPU job's time limit, a kill) resumes with
    the missing chunks only; a chunk whose stored meta differs is recomputed. ``folder`` None: nothing saved.
    ``max_chunks`` computes at most that many and then raises InterruptedError (tests of the resume).
    Written here rather than reusing features' chunk cache, which is bound to one loader over many backbones."""
    n_chunks = (n + chunk_size - 1) // chunk_size
    out, done = [], 0
    for c in tqdm(range(n_chunks), desc=desc, disable=not progress):
        lo, hi = c * chunk_size, min(n, (c + 1) * chunk_size)
        f = folder / f"chunk_{c:05d}_{chunk_size}.npz" if folder is not None else None
        if f is not None and f.is_file():
            with np.load(f, allow_pickle=False) as z:
                if str(z["meta"]) == meta_json:
                    out.append({k: z[k] for k in z.files if k != "meta"})
                    continue
        if max_chunks is not None and done >= max_chunks:
            raise InterruptedError(f"stopped after {max_chunks} chunk(s) (max_chunks)")
        part = compute(lo, hi)
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(f, suffix=".npz") as tmp:
                np.savez(tmp, meta=meta_json, **part)
        out.append(part)
        done += 1
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
    folder = Path(cache) / f"clipiqa_{hashlib.sha256(meta.encode()).hexdigest()[:20]}" if cache is not None else None

    def compute(lo: int, hi: int) -> dict[str, np.ndarray]:
        out = []
        with torch.inference_mode():
            for p in paths[lo:hi]:
                f = encode_image(model, image_tensor(p, mean, std, exif=manifest.exif_transpose)[None], "drop").float().numpy()
                out.append(q_sim(f, text, scale)[0])
        return {"q": np.asarray(out, np.float64)}

    parts = chunked(folder, meta, len(paths), chunk_size, compute, f"CLIP-IQA {manifest.name}", progress, max_chunks)
    return np.concatenate([c["q"] for c in parts])


def score_table(views: ViewEmbeddings, text: np.ndarray, scale: float,
                configs: dict[str, MAClipConfig]) -> pd.DataFrame:
    """Image scores of every config from one set of cached view embeddings (long format: image, config, score)."""
    rows = []
    for i in range(len(views)):
        f = views.image(i)
        for name, cfg in configs.items():
            rows.append((i, name, maclip_views(f, text, scale, cfg)["score"]))
    return pd.DataFrame(rows, columns=["index", "config", "score"])


def clip_scores(model_name: str, manifest: Manifest, weights: str | None, pre_resize, lambdas, biases,
                alphas, progress: bool = False, pretrained: bool = True) -> dict[str, np.ndarray]:
    """CLIP-IQA, MA-CLIP and the ablation grid of one CLIP model on a dataset, per image in manifest order
    (raises backbones.WeightsError when the weights are absent; ``pretrained=False``: seeded random weights,
    the smoke profile). The view embeddings are cached."""
    import open_clip
    from .backbones import REGISTRY, create_backbone
    bb = create_backbone(model_name, pretrained=pretrained, weights=weights)
    model, pp = bb.model, bb.preprocess
    tok = open_clip.get_tokenizer(REGISTRY[model_name].arch)
    views = clip_view_embeddings(model, manifest, pp.mean, pp.std, pre_resize, "drop", cache=cache_dir("maclip"),
                                 identity={"model": model_name, "weights": bb.weight_id}, progress=progress)
    text = text_features(model, tok).numpy()
    st = score_table(views, text, float(model.logit_scale.exp()), ablation_grid(lambdas, biases, alphas))
    out = {"CLIP-IQA": clipiqa_scores(model, tok, manifest, pp.mean, pp.std, progress=progress,
                                      cache=cache_dir("maclip"), identity={"model": model_name, "weights": bb.weight_id})}
    for name, g in st.groupby("config", sort=False):
        out[name] = g.sort_values("index")["score"].to_numpy()
    return out


def dataset_scores(manifest: Manifest, features: dict[str, np.ndarray], clip_models: Sequence[str],
                   weights: dict[str, str], t4, pretrained: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every zero-shot score on one dataset: the magnitude cue (Q_mag, lambda 0.5) and the L2 norm of each
    backbone's pooled ``features`` (rows in manifest order), and each CLIP model's scores where its weights
    exist. Returns (scores: source, score, image, value, mos; notes: model, note for CLIP models not run)."""
    from .backbones import WeightsError
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
