"""How a dataset's per-split numbers were obtained (its design), which decides their intervals and tests:
overlapping random/published splits (Nadeau-Bengio) or heads tested on shared images (two-level bootstrap)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from ..core.paths import single_partition, split_sizes

__all__ = ["Design", "designs", "cross_designs", "splits_provenance", "design_note"]


@dataclass(frozen=True)
class Design:
    """How one dataset's per-split numbers were obtained, which decides their uncertainty and tests.

    ``splits``: J overlapping random (or published) splits, each with its own test part: Nadeau-Bengio
    corrected intervals and tests (n_train/n_test: mean part sizes) + Wilcoxon.
    ``shared``: J heads (splits of a source dataset, or training seeds on a dataset's single official
    split) all tested on the *same* images: two-level bootstrap (heads, then images; stats.two_level_bootstrap).
    """
    kind: str                     # "splits" | "shared"
    n_train: int = 0
    n_test: int = 0
    what: str = "splits"          # what the J heads are: "splits" | "training seeds" | "source splits"
    head_inflation: float = 1.0   # shared: head-level variance factor (overlapping source splits: Nadeau-Bengio's)
    provenance: str = ""          # where the splits come from: "10 published + 2 ours (seeded)", ...


def designs(splits: dict[str, pd.DataFrame]) -> dict[str, Design]:
    """Per dataset (name -> its split file's rows, in the run's order), its design: random/published splits
    (Nadeau-Bengio, with mean part sizes) or one partition trained with several seeds (shared test images:
    two-level bootstrap)."""
    out = {}
    for d, sp in splits.items():
        if single_partition(d):
            out[d] = Design("shared", what="training seeds", provenance=f"one official partition, "
                                                                        f"{sp['split'].nunique()} training seeds")
        else:
            n_tr, n_te = split_sizes(sp)
            out[d] = Design("splits", n_tr, n_te, provenance=splits_provenance(sp))
    return out


def splits_provenance(sp: pd.DataFrame) -> str:
    """What a split file holds, for captions: published splits carry seed -1, ours a seed >= 0."""
    seeds = sp.groupby("split")["seed"].first()
    pub, ours = int((seeds < 0).sum()), int((seeds >= 0).sum())
    if pub and ours:
        return f"{pub} published + {ours} ours (seeded)"
    return f"{pub} published splits" if pub else f"{ours} random splits (ours, seeded)"


def design_note(design: dict[str, "Design"]) -> str:
    """One clause for a caption: each dataset's splits and where they come from."""
    parts = [f"{d}: {x.provenance}" for d, x in design.items() if x.provenance]
    return f" Splits: {'; '.join(parts)}." if parts else ""


def cross_designs(pairs: Sequence[tuple[str, str]], splits: dict[str, pd.DataFrame]) -> dict[str, Design]:
    """Cross-dataset pairs (``splits``: each source dataset's split file): every source split's head is tested on the
    same whole target set (two-level bootstrap); the source splits overlap in their training sets, so their
    head-level variance gets Nadeau-Bengio's factor 1 + J n_test/n_train (STUDY_SPEC.md section 4;
    stats.two_level_bootstrap)."""
    out = {}
    for a, b in pairs:
        sp = splits[a]
        n_tr, n_te = split_sizes(sp)
        J = sp["split"].nunique()
        infl = 1 + J * n_te / n_tr if J > 1 else 1.0
        out[f"{a}->{b}"] = Design("shared", what=f"source splits, variance x{infl:.2f} for their overlap",
                                  head_inflation=infl)
    return out
