"""What a table's ``compute`` returns: its numbers and what to write, without touching a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Result"]


@dataclass
class Result:
    """A table computed (pure: nothing read or written): ``frames``, what the notebook shows; ``files``, what
    :func:`nriqa_lib.reporting.export.write_result` writes into the table's folder, in order (an exported table
    with its caption, a plain CSV, a figure drawn when it is written, by the plot it names); ``metrics``, its metrics.json. ``label`` ends
    every caption (a random-weights run says so)."""
    label: str = ""
    frames: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, str, Any, str]] = field(default_factory=list)
    metrics: dict | None = None

    def table(self, name: str, df: pd.DataFrame, caption: str = "") -> None:
        """``tables/<name>.csv/.md/.tex`` with ``caption`` (+ the label)."""
        self.files.append(("table", name, df, caption + self.label))

    def csv(self, name: str, df: pd.DataFrame) -> None:
        """``tables/<name>.csv`` only (the long rows and summaries behind a table)."""
        self.files.append(("csv", name, df, ""))

    def figure(self, name: str, plot: str, *args: Any, **kwargs: Any) -> None:
        """``figures/<name>.png``, drawn when it is written by ``nriqa_lib.reporting.plots.<plot>(*args, **kwargs)``
        (named, not imported: analysis computes, reporting draws)."""
        self.files.append(("figure", name, (plot, args, kwargs), ""))
