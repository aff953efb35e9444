"""Build ``data_manifests/<name>.csv`` + ``<name>.yaml`` from the published label tables.

Reproducible: ``python -m nriqa_lib.data.build_manifests --labels ../shared/labels --clive ../shared/datasets/clive``
rewrites the same bytes. Each card records the label file, its sha256, the original scale and direction.
MOS is normalised to [0, 1] on the nominal scale, higher is better: (raw - lo) / (hi - lo), or
(hi - raw) / (hi - lo) for DMOS. This equals P1's label scaling (MOS/100, (mos-1)/4, mos/5).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from .manifest import MANIFEST_DIR, ManifestError, sha256_file
from ..core.io import atomic_write_text


def _strip_first(p: pd.Series) -> pd.Series:
    """'KADID-10k/images/I01.png' -> 'images/I01.png' (the first component is the dataset folder)."""
    return p.str.split("/", n=1).str[1]


@dataclass(frozen=True)
class Spec:
    label_file: str
    scale: tuple[float, float]
    higher_is_better: bool
    parse: Callable[[pd.DataFrame], pd.DataFrame]   # -> image, mos_raw, group[, set, dis_type]
    citation: str
    source: str
    expected_rows: int
    note: str = ""


def _icbcbicc(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"image": _strip_first(df["dis_img_path"]), "mos_raw": df["score"]})
    out["group"] = _strip_first(df["ref_img_path"]) if "ref_img_path" in df else out["image"]
    out["dis_type"] = df["dis_type"]
    return out


def _koniq(df: pd.DataFrame, folder: str = "1024x768") -> pd.DataFrame:
    sets = {"training": "train", "validation": "val", "test": "test"}
    return pd.DataFrame({"image": f"{folder}/" + df["image_name"], "mos_raw": df["MOS"],
                         "group": f"{folder}/" + df["image_name"], "set": df["set"].map(sets)})


def _koniq_512(df: pd.DataFrame) -> pd.DataFrame:
    return _koniq(df, "512x384")


def _agiqa3k(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"image": df["name"], "mos_raw": df["mos_quality"], "group": df["name"]})


def _agiqa1k(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"image": df["Image"], "mos_raw": df["Score"], "group": df["Image"]})


ICB = "icbcbicc/IQA-Dataset @ bfc87eeb"
SPECS: dict[str, Spec] = {
    "koniq10k": Spec("koniq10k_distributions_sets.csv", (0, 100), True, _koniq,
                     "Hosu et al., KonIQ-10k, IEEE TIP 2020", "subpic/koniq @ 1c271570", 10073,
                     "MOS column of the distributions file (1-100 scale, normalised as MOS/100 like P1); "
                     "official split in `set`; images expected under <root>/1024x768/"),
    "koniq10k_512x384": Spec("koniq10k_distributions_sets.csv", (0, 100), True, _koniq_512,
                             "Hosu et al., KonIQ-10k, IEEE TIP 2020", "subpic/koniq @ 1c271570", 10073,
                             "KonIQ-10k's 512x384 release, the one P1 reads (dataset.py l.61: "
                             "koniq10k_512x384/512x384/): same rows, labels and official split as koniq10k; images "
                             "expected under <root>/512x384/; use it for dataset koniq10k with "
                             "data.manifests: {koniq10k: koniq10k_512x384}"),
    "kadid10k": Spec("icbcbicc_KADID-10k.csv", (1, 5), True, _icbcbicc,
                     "Lin et al., KADID-10k, QoMEX 2019", ICB, 10125, "the score column is MOS (higher is better)"),
    "spaq": Spec("icbcbicc_SPAQ.csv", (0, 100), True, _icbcbicc,
                 "Fang et al., SPAQ, CVPR 2020", ICB, 11125),
    "agiqa3k": Spec("agiqa3k_data.csv", (0, 5), True, _agiqa3k,
                    "Li et al., AGIQA-3K, IEEE TCSVT 2023", "lcysyzxdxc/AGIQA-3k-Database @ 30ded2be", 2982,
                    "perceptual quality column mos_quality (mos_align not used)"),
    "agiqa1k": Spec("agiqa1k_AIGC_all.csv", (0, 5), True, _agiqa1k,
                    "Zhang et al., AGIQA-1K, 2023", "lcysyzxdxc/AGIQA-1k-Database @ 7a8d9f23", 1080),
    "csiq": Spec("icbcbicc_CSIQ.csv", (0, 1), False, _icbcbicc,
                 "Larson & Chandler, CSIQ, JEI 2010", ICB, 866, "DMOS, lower is better"),
    "tid2013": Spec("icbcbicc_TID2013.csv", (0, 9), True, _icbcbicc,
                    "Ponomarenko et al., TID2013, SPIC 2015", ICB, 3000),
    "live": Spec("icbcbicc_LIVE.csv", (0, 100), False, _icbcbicc,
                 "Sheikh et al., LIVE IQA release 2, TIP 2006", ICB, 779,
                 "DMOS, lower is better; a few values fall slightly outside 0-100"),
}


def _normalise(raw: pd.Series, lo: float, hi: float, higher_is_better: bool) -> pd.Series:
    x = (raw - lo) / (hi - lo)
    return x if higher_is_better else 1.0 - x


def _card(name: str, df: pd.DataFrame, label_path: Path, spec_fields: dict) -> dict:
    raw = df["mos_raw"].astype(float)
    card = {
        "dataset": name,
        "rows": int(len(df)),
        "label_file": label_path.name,
        "label_sha256": sha256_file(label_path),
        "original_scale": {"nominal_range": list(spec_fields["scale"]),
                           "direction": "higher is better" if spec_fields["higher_is_better"] else "lower is better (DMOS)",
                           "observed_range": [round(float(raw.min()), 6), round(float(raw.max()), 6)]},
        "mos": "normalised to [0, 1] on the nominal range, higher is better",
        "groups": int(df["group"].nunique()),
    }
    if "set" in df:
        card["official_split"] = {k: int(v) for k, v in df["set"].value_counts().sort_index(kind="stable").items()}
    for k in ("source", "citation", "note"):
        if spec_fields.get(k):
            card[k] = spec_fields[k]
    return card


def _write(name: str, df: pd.DataFrame, card: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    atomic_write_text(out_dir / f"{name}.yaml", yaml.safe_dump(card, sort_keys=False, allow_unicode=True))


def build_one(name: str, labels: Path, out_dir: Path = MANIFEST_DIR) -> pd.DataFrame:
    spec = SPECS[name]
    path = labels / spec.label_file
    df = spec.parse(pd.read_csv(path))
    if len(df) != spec.expected_rows:
        raise ManifestError(f"{path}: expected {spec.expected_rows} rows for {name}, got {len(df)}")
    df["mos"] = _normalise(df["mos_raw"].astype(float), *spec.scale, spec.higher_is_better)
    cols = ["image", "mos", "mos_raw", "group"] + [c for c in ("set", "dis_type") if c in df]
    df = df[cols]
    _write(name, df, _card(name, df, path, spec.__dict__), out_dir)
    return df


_LIVE_NOTE = ("the images are under the LIVE copyright notice README-LIVE.txt of the dataset root, which must "
              "accompany every copy")


def _clive(clive_root: Path, out_dir: Path, name: str, training_images: bool, note: str) -> pd.DataFrame:
    """A CLIVE manifest from ../shared/datasets/clive/clive.csv, in its (the release's) row order, per-file sha256."""
    path = clive_root / "clive.csv"
    src = pd.read_csv(path)
    if not training_images:
        src = src[src["is_training_image"] == 0].reset_index(drop=True)
    expected = 1169 if training_images else 1162
    if len(src) != expected:
        raise ManifestError(f"{path}: expected {expected} rows for {name} (1162 test images"
                            f"{' + the 7 training images' if training_images else ''}), got {len(src)}")
    df = pd.DataFrame({"image": src["image"], "mos": src["mos"] / 100.0, "mos_raw": src["mos"],
                       "group": src["image"], "original_name": src["original_name"], "sha256": src["sha256"]})
    card = _card(name, df, path, {"scale": (0, 100), "higher_is_better": True,
                                  "citation": "Ghadiyaram & Bovik, IEEE TIP 2016",
                                  "source": "../shared/datasets/clive (complete release; BMP files as lossless WebP)",
                                  "note": f"{note}; {_LIVE_NOTE}"})
    _write(name, df, card, out_dir)
    return df


def build_clive(clive_root: Path, out_dir: Path = MANIFEST_DIR) -> pd.DataFrame:
    """CLIVE: the 1162 test images (t1-t7 excluded, the standard protocol), with per-file sha256."""
    return _clive(clive_root, out_dir, "clive", False, "7 training images t1-t7 excluded")


def build_clive_p1(clive_root: Path, out_dir: Path = MANIFEST_DIR) -> pd.DataFrame:
    """CLIVE as P1 reads it (dataset.py l.172-181): all 1169 rows of AllImages_release, the 7 training images
    t1-t7 included, in the release's order (the order of ../shared/datasets/clive/clive.csv: t1-t7 first, as
    the [7:1169] slice other IQA code takes of the .mat implies), so P1's random_split partitions (935/234 with
    seeds 8/19/25) come out index for index. For dataset clive with data.manifests: {clive: clive_p1}."""
    return _clive(clive_root, out_dir, "clive_p1", True, "P1's rows: all 1169 of AllImages_release in release "
                  "order, the 7 training images t1-t7 included (the paper profile)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=Path("../shared/labels"))
    ap.add_argument("--clive", type=Path, default=Path("../shared/datasets/clive"))
    ap.add_argument("--out", type=Path, default=MANIFEST_DIR)
    a = ap.parse_args(argv)
    for name in SPECS:
        df = build_one(name, a.labels, a.out)
        print(f"{name}: {len(df)} rows, {df['group'].nunique()} groups")
    df = build_clive(a.clive, a.out)
    print(f"clive: {len(df)} rows")
    df = build_clive_p1(a.clive, a.out)
    print(f"clive_p1: {len(df)} rows")


if __name__ == "__main__":
    main()
