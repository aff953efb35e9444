"""The typed input every table takes besides its own section (no params object below the stages)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.config import Stats

__all__ = ["TableInputs"]


@dataclass(frozen=True)
class TableInputs:
    """What a table reads of the run besides its own section (its stage fills it from params): the datasets and
    backbones, whether the weights are pretrained (``features.pretrained``; a random-weights run labels every
    table), how epochs were selected (``train.select_on``), whether last-epoch tables are wanted
    (``train.report_last``) and the statistics (``stats``: alpha, n_boot, seed)."""
    datasets: Sequence[str]
    backbones: Sequence[str]
    stats: Stats
    pretrained: bool = True
    select_on: str = "val"
    report_last: bool = False
