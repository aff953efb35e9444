"""Stage ``splits@<dataset>``: splits/<dataset>.csv (long: split, seed, image, part)."""
from __future__ import annotations

from ..data.manifest import open_dataset
from ..data.splits import make_splits, save_splits
from ..paths import splits_path
from ..workspace import repo_path

PARAMS = ("data.roots", "data.manifests", "data.limit", "data.limit_seed", "splits")


def run(p, dataset: str) -> None:
    """Splits of the dataset; under ``data.limit`` a fixed (published or official) split is made on the whole
    dataset and restricted to the sampled images, a random or P1 split is drawn on the sample itself."""
    m = open_dataset(p, dataset)
    scheme = p.splits.schemes.get(dataset, "random")
    fixed = scheme in ("clive_liqe", "official") and p.data.limit
    df = open_dataset(p, dataset, limited=False).table if fixed else m.table
    sp = make_splits(df, scheme, n_splits=p.splits.n_splits, ratios=p.splits.ratios, seed=p.splits.seed,
                     liqe_folder=repo_path(p.splits.liqe_folder))
    if fixed:
        sp = sp[sp["image"].isin(set(m.table["image"]))].reset_index(drop=True)
    save_splits(sp, splits_path(dataset))
    sizes = sp.groupby(["split", "part"]).size().unstack().mean().round(1).to_dict()
    print(f"{dataset}: scheme {scheme}, {sp['split'].nunique()} split(s), mean sizes {sizes}"
          + (f" (data.limit {p.data.limit})" if p.data.limit else ""))
