"""Stage ``splits@<dataset>``: splits/<dataset>.csv (long: split, seed, image, part)."""
from __future__ import annotations

from ..data.manifest import load_dataset
from ..data.splits import make_splits, save_splits
from ..paths import splits_path

PARAMS = ("data.roots", "splits")


def run(p, dataset: str) -> None:
    m = load_dataset(dataset, p.data.roots, decode=False)
    scheme = p.splits.schemes.get(dataset, "random")
    sp = make_splits(m.table, scheme, n_splits=p.splits.n_splits, ratios=p.splits.ratios, seed=p.splits.seed,
                     liqe_folder=p.splits.liqe_folder)
    save_splits(sp, splits_path(dataset))
    sizes = sp.groupby(["split", "part"]).size().unstack().mean().round(1).to_dict()
    print(f"{dataset}: scheme {scheme}, {sp['split'].nunique()} split(s), mean sizes {sizes}")
