"""The embedded offline dataset: scikit-image's bundled colour photos x 5 distortions x 5 levels.

SCORES ARE SYNTHETIC, NOT HUMAN OPINIONS: the pseudo-MOS is 100 * SSIM(distorted, pristine) on the
luminance channel (Wang et al. 2004, skimage.metrics.structural_similarity), a full-reference score that
is comparable across distortion types. It lets ``dvc repro`` run anywhere without a download; it says
nothing about human perception. ``group`` is the source photo, so splits are reference-disjoint.
Same seed -> byte-identical images (PNG) and manifest.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from ..core.io import atomic_path, atomic_write_text
from .manifest import sha256_file

# pristine colour photographs bundled inside scikit-image (no download); motorcycle_right is left out
# because it is the stereo twin of motorcycle_left.
SOURCES = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
           "rocket", "motorcycle_left")

# level 1 (mild) .. 5 (strong)
LEVELS = {
    "gaussian_blur": (0.7, 1.4, 2.2, 3.2, 4.5),          # sigma in pixels
    "gaussian_noise": (0.02, 0.04, 0.07, 0.11, 0.16),   # sd on [0, 1]
    "jpeg": (45, 25, 14, 8, 4),                          # quality
    "contrast_brightness": ((0.85, 1.05), (0.7, 1.15), (0.55, 0.8), (0.4, 0.65), (0.25, 0.5)),  # (contrast, brightness)
    "downscale": (0.7, 0.5, 0.35, 0.25, 0.15),           # scale factor, then upscale back (bicubic)
}
SIZE = 384
COLUMNS = ("image", "mos", "mos_raw", "group", "dis_type", "level", "sha256")   # the manifest's


def _pristine(name: str, size: int = SIZE) -> Image.Image:
    img = skdata.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    im = Image.fromarray(img[..., :3].astype(np.uint8))
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return im.resize((size, size), Image.Resampling.BICUBIC)


def distort(im: Image.Image, kind: str, level: int, rng: np.random.Generator) -> Image.Image:
    """Apply distortion ``kind`` at ``level`` (1..5) to an RGB image."""
    p = LEVELS[kind][level - 1]
    if kind == "gaussian_blur":
        return im.filter(ImageFilter.GaussianBlur(radius=p))
    if kind == "gaussian_noise":
        x = np.asarray(im, dtype=np.float64) / 255.0
        x = np.clip(x + rng.normal(0.0, p, x.shape), 0, 1)
        return Image.fromarray(np.round(x * 255).astype(np.uint8))
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=p)
        buf.seek(0)
        return Image.open(buf).convert("RGB")
    if kind == "contrast_brightness":
        c, b = p
        return ImageEnhance.Brightness(ImageEnhance.Contrast(im).enhance(c)).enhance(b)
    if kind == "downscale":
        w, h = im.size
        small = im.resize((max(8, round(w * p)), max(8, round(h * p))), Image.Resampling.BICUBIC)
        return small.resize((w, h), Image.Resampling.BICUBIC)
    raise ValueError(f"unknown distortion {kind!r}")


def pseudo_mos(dist: Image.Image, ref: Image.Image) -> float:
    """100 * SSIM on luminance in [0, 1]: synthetic, full-reference, NOT a human opinion."""
    a = rgb2gray(np.asarray(dist))
    b = rgb2gray(np.asarray(ref))
    return float(100.0 * max(0.0, structural_similarity(a, b, data_range=1.0)))


def generate(out_root: str | Path, manifest: str | Path, seed: int = 0, sources=SOURCES) -> pd.DataFrame:
    """Write images under ``out_root/images`` and the manifest CSV; deterministic for a given seed."""
    out_root = Path(out_root)
    (out_root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for si, src in enumerate(sources):
        ref = _pristine(src)
        items = [("pristine", 0, ref)]
        for ki, kind in enumerate(LEVELS):
            for level in range(1, 6):
                rng = np.random.default_rng([seed, si, ki, level])
                items.append((kind, level, distort(ref, kind, level, rng)))
        for kind, level, im in items:
            rel = f"images/{src}__{kind}_{level}.png"
            with atomic_path(out_root / rel) as tmp:
                # compress_level 1: lossless like the default 6, the same pixels; the stage 9.2 s instead of 15 s
                im.save(tmp, format="PNG", compress_level=1)
            q = pseudo_mos(im, ref)
            rows.append({"image": rel, "mos": round(q / 100.0, 10), "mos_raw": round(q, 8), "group": src,
                         "dis_type": kind, "level": level, "sha256": sha256_file(out_root / rel)})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    atomic_write_text(manifest, df.to_csv(index=False, lineterminator="\n"))
    return df
