"""The Stage registry: one :class:`~nriqa_lib.pipeline.spec.Stage` per DVC stage, declared beside the code that
computes it (a compute stage's module under nriqa_lib/stages/ holds ``STAGE``; the notebook stages, one per table,
are entries of :mod:`nriqa_lib.pipeline.tables`). dvc.yaml (:mod:`nriqa_lib.pipeline.dvcfile`), the CLI's
subcommands (:mod:`nriqa_lib.cli`), the params each stage may read (:func:`view`) and the pipeline tests are all
derived from :func:`registry`. Adding a table or a stage: docs/extending.md.
"""
from __future__ import annotations

import importlib
from typing import Sequence

from ..core.config import Params
from ..core.params import ParamsView
from .spec import Stage

__all__ = ["registry", "stage", "view", "COMPUTE_MODULES"]


# the compute stages, in pipeline order: check -> synthetic -> splits -> features -> heads / cross / zeroshot /
# figures / finetune / resolution; then the notebook stages of the declared tables (nriqa_lib/tables) and the report
COMPUTE_MODULES = ("check", "synthetic", "splits", "features", "heads", "cross", "zeroshot", "figures", "finetune",
                   "resolution")


def registry(extra: Sequence[Stage] = ()) -> dict[str, Stage]:
    """Every stage by name, in dvc.yaml's order: the compute stages, one notebook stage per declared table, the
    report; ``extra`` stages are added before the report."""
    from .tables import report_stage, table_stages
    stages = [importlib.import_module(f"nriqa_lib.stages.{m}").STAGE for m in COMPUTE_MODULES]
    tables = [*table_stages(), *extra]
    out = {s.name: s for s in [*stages, *tables, report_stage(tables)]}
    if len(out) != len(stages) + len(tables) + 1:
        raise ValueError("two stages of the registry share a name")
    return out


def stage(name: str) -> Stage:
    """The registered stage ``name``; an unknown name is refused in one line with the known ones."""
    reg = registry()
    if name not in reg:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(reg)}")
    return reg[name]


def view(p: Params, name: str) -> ParamsView:
    """What stage or notebook ``name`` may read of ``p``."""
    return ParamsView(p, stage(name).params, f"stage {name}")
