"""Stage ``splits@<dataset>``: splits/<dataset>.csv (long: split, seed, image, part)."""
from __future__ import annotations

from ..data.splits import make_splits, save_splits
from ..core.paths import splits_path
from ..core.workspace import repo_path
from .datasets import open_dataset
from ..pipeline.spec import D, ComputeStage

STAGE = ComputeStage(name="splits", module=__name__, matrix=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "splits", "train.select_on"),
              desc="train/val/test splits of a dataset (splits.schemes)", deps=("data_manifests",),
              outs=(str(splits_path(D)),), writes=(str(splits_path("").parent),))

MIN_PART = 3         # SRCC of fewer than 3 images is not a correlation; selection and testing need 3 or more


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
    check_sizes(sp, dataset, p.train.select_on, p.data.limit)
    save_splits(sp, splits_path(dataset))
    sizes = sp.groupby(["split", "part"]).size().unstack().mean().round(1).to_dict()
    print(f"{dataset}: scheme {scheme}, {sp['split'].nunique()} split(s), mean sizes {sizes}"
          + (f" (data.limit {p.data.limit})" if p.data.limit else ""))


def check_sizes(sp, dataset: str, select_on: str, limit: int = 0) -> None:
    """Refuse (one line, with the sizes) splits that the heads could not train, select or test on: every split
    needs >= 3 train and test images, and >= 3 val images when the epoch is selected on val."""
    from ..core.config import ConfigError
    sizes = sp.groupby(["split", "part"]).size().unstack(fill_value=0).reindex(columns=["train", "val", "test"],
                                                                                fill_value=0)
    need = ["train", "test"] + (["val"] if select_on == "val" else [])
    for k, row in sizes.iterrows():
        short = [q for q in need if row[q] < MIN_PART]
        if short:
            why = (f"model selection on val needs >= {MIN_PART} val images" if "val" in short else
                   f"training and testing need >= {MIN_PART} images each")
            raise ConfigError(f"splits of {dataset}: split {k} has {row['train']} train / {row['val']} val / "
                              f"{row['test']} test images" + (f" (data.limit={limit})" if limit else "")
                              + f"; {why}: raise data.limit" + (", change splits.ratios, or use train.select_on: "
                                                                    "test" if "val" in short else
                                                                    " or change splits.ratios"))
