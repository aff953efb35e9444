"""What a trained head looks at: t-SNE of its hidden layer, Grad-CAM of its score on a CNN backbone."""
from __future__ import annotations

import copy

import numpy as np
import torch

__all__ = ["hidden_embedding", "gradcam", "sq_distances"]


def sq_distances(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of the rows of X in float64, one row at a time with numpy's own sums.

    Why not sklearn's euclidean_distances: it expands |x|^2 + |y|^2 - 2 x.y with a BLAS product, whose last bits
    depend on the CPU's BLAS kernel; t-SNE amplifies those bits into a different layout (measured: three
    OpenBLAS kernels gave three different pictures of the same head)."""
    X = np.asarray(X, np.float64)
    return np.stack([((X - x) ** 2).sum(axis=1) for x in X])


def hidden_embedding(head: torch.nn.Module, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, Barnes-Hut) of the head's last hidden layer, the same on any CPU: distances
    from :func:`sq_distances` and a seeded random start instead of the PCA start (an SVD, BLAS again)."""
    from sklearn.manifold import TSNE
    with torch.no_grad():
        h = head.hidden(torch.as_tensor(X, dtype=next(head.parameters()).dtype)).numpy()
    return TSNE(n_components=2, init="random", metric="precomputed", random_state=seed,
                perplexity=min(30, len(h) - 1)).fit_transform(sq_distances(h))


def gradcam(backbone, head: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of the head's quality score w.r.t. a timm CNN's last feature map.

    x: (1, C, H, W) preprocessed image; returns an (h, w) map in [0, 1].

    Computed in float64 (a copy of the backbone): in float32 the map, and so gradcam.png, differed under the kernel
    paths of a CPU without AVX2 (scripts/kernel_paths_study.py, its baseline profile); in float64 such differences
    are ~1e-16, far below the colour map's 1/256 steps.
    """
    model = copy.deepcopy(backbone.model).double()
    with torch.enable_grad():
        fmap = model.forward_features(x.double()).detach().requires_grad_(True)       # (1, K, h, w)
        score = head(model.forward_head(fmap, pre_logits=True).to(next(head.parameters()).dtype))
        (g,) = torch.autograd.grad(score.sum(), fmap)
    w = g.mean((2, 3), keepdim=True)
    cam = torch.relu((w * fmap).sum(1))[0].detach().numpy()
    return cam / cam.max() if cam.max() > 0 else cam
