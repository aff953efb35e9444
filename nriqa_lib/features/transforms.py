"""Test-time views of an image for a backbone (P1's squash, timm's centre crop, five crops, native size, P2's grid),
and P1's HF-processor path for transformers backbones."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..backbones.registry import Preprocess
from .views import make_views

TestTime = Literal["squash", "center_crop", "multi_crop", "native", "grid"]
__all__ = ["TestTime", "build_transform", "ProcessorTransform"]


def _interp(name: str):
    from torchvision import transforms as T
    return {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
            "nearest": T.InterpolationMode.NEAREST}[name]


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
