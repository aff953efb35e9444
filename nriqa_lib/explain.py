"""What a trained head looks at: t-SNE of its hidden layer, Grad-CAM of its score on a CNN backbone."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["hidden_embedding", "gradcam"]


def hidden_embedding(head: torch.nn.Module, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of the head's last hidden layer."""
    from sklearn.manifold import TSNE
    with torch.no_grad():
        h = head.hidden(torch.as_tensor(X, dtype=torch.float32)).numpy()
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(h) - 1)).fit_transform(h)


def gradcam(backbone, head: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of the head's quality score w.r.t. a timm CNN's last feature map.

    x: (1, C, H, W) preprocessed image; returns an (h, w) map in [0, 1].
    """
    model = backbone.model
    with torch.enable_grad():
        fmap = model.forward_features(x).detach().requires_grad_(True)       # (1, K, h, w)
        score = head(model.forward_head(fmap, pre_logits=True))
        (g,) = torch.autograd.grad(score.sum(), fmap)
    w = g.mean((2, 3), keepdim=True)
    cam = torch.relu((w * fmap).sum(1))[0].detach().numpy()
    return cam / cam.max() if cam.max() > 0 else cam
