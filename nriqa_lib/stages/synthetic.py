"""Stage ``synthetic``: the embedded offline dataset (data/synthetic, data_manifests/synthetic.csv)."""
from __future__ import annotations

from pathlib import Path

from ..data.synthetic import generate

PARAMS = ("data.synthetic_root", "data.synthetic_seed")


def run(p) -> None:
    df = generate(p.data.synthetic_root, Path("data_manifests") / "synthetic.csv", seed=p.data.synthetic_seed)
    print(f"synthetic: {len(df)} images, {df['group'].nunique()} sources, pseudo-MOS "
          f"{df['mos_raw'].min():.1f}-{df['mos_raw'].max():.1f} (SSIM x 100, not human opinions)")
