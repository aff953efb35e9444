"""Stage ``synthetic``: the embedded offline dataset (data/synthetic, data_manifests/synthetic.csv), generated only
when ``data.datasets`` lists it; otherwise (the paper profile) an empty folder and a header-only manifest, so the
stage's outputs exist for DVC and nothing is computed."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..data.synthetic import COLUMNS, generate
from ..core.io import atomic_write_text
from ..pipeline.spec import ComputeStage

STAGE = ComputeStage(name="synthetic", module=__name__, params=("data.datasets", "data.synthetic_root", "data.synthetic_seed"),
              desc="the embedded synthetic set (scores are 100 x SSIM, not human opinions)",
              outs=("data/synthetic", "data_manifests/synthetic.csv"))


def run(p) -> None:
    manifest = Path("data_manifests") / "synthetic.csv"
    if "synthetic" not in p.data.datasets:
        root = Path(p.data.synthetic_root)
        if root.exists():
            shutil.rmtree(root)
        (root / "images").mkdir(parents=True)
        atomic_write_text(manifest, ",".join(COLUMNS) + "\n")
        print("synthetic: not in data.datasets, nothing generated (empty folder, header-only manifest)")
        return
    df = generate(p.data.synthetic_root, manifest, seed=p.data.synthetic_seed)
    print(f"synthetic: {len(df)} images, {df['group'].nunique()} sources, pseudo-MOS "
          f"{df['mos_raw'].min():.1f}-{df['mos_raw'].max():.1f} (SSIM x 100, not human opinions)")
