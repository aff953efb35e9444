"""Formatting shared by the tables and the report (a leaf: pandas only): 'mean ± sd' cells and the label of a
random-weights run."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["format_pm", "p_text", "RANDOM_WEIGHTS"]

# the label of every table and report of a random-weights run (features.pretrained: false, the smoke profile)
RANDOM_WEIGHTS = "random weights: checks the code path, not results"


def format_pm(summary: pd.DataFrame, index: Sequence[str], columns: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """Pivot a summary into 'mean ± sd' cells."""
    s = summary.copy()
    s["cell"] = [f"{m:.{digits}f} ± {sd:.{digits}f}" for m, sd in zip(s["mean"], s["sd"])]
    return s.pivot_table(index=list(index), columns=list(columns), values="cell", aggfunc="first")


def p_text(p: float, below: bool, bound: str = "<=") -> str:
    """A p-value to 3 significant digits; ``below``: it is a bound (a bootstrap's resolution), written ``<bound> p``
    (the raw bootstrap p ``<``, an adjusted one ``<=``)."""
    return f"{bound} {p:.3g}" if below else f"{p:.3g}"
