"""P2's equations (arXiv 2511.09948, STUDY_SPEC.md section 3) on image embeddings: Q_sim, Q_mag (shifted Box-Cox),
the adaptive fusion and the ablation grid; numpy only (the embeddings come from :mod:`nriqa_lib.zeroshot.clip`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

__all__ = ["q_sim", "q_mag", "fuse", "MAClipConfig", "maclip_views", "ablation_grid", "magnitude_scores",
           "l2_norm_scores", "ViewEmbeddings", "score_table"]


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


def score_table(views: ViewEmbeddings, text: np.ndarray, scale: float,
                configs: dict[str, MAClipConfig]) -> pd.DataFrame:
    """Image scores of every config from one set of cached view embeddings (long format: image, config, score)."""
    rows = []
    for i in range(len(views)):
        f = views.image(i)
        for name, cfg in configs.items():
            rows.append((i, name, maclip_views(f, text, scale, cfg)["score"]))
    return pd.DataFrame(rows, columns=["index", "config", "score"])
