"""MA-CLIP's view grid (P2, arXiv 2511.09948, section 3): stride-128 crops of 224 px plus the bilinear global view."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["view_grid", "make_views"]


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
