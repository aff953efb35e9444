"""One :class:`~nriqa_lib.stages.registry.Stage` per DVC stage (dvc.yaml runs ``python -m nriqa_lib.cli <stage>``).

A compute stage's module declares ``STAGE`` (its params, data deps, outputs, command-line options) and
``run(p, ...)``, which receives a :class:`nriqa_lib.config.ParamsView` of exactly the declared params: reading
anything else raises. The notebook stages (one per table, the data overview, the report) are the entries of
:mod:`nriqa_lib.stages.tables`; each runs one analysis function under its module's ``PARAMS``. dvc.yaml, the CLI
and tests/test_pipeline.py are derived from :func:`~nriqa_lib.stages.registry.registry`.
"""
from __future__ import annotations

from ..config import Params, ParamsView
from .registry import Stage, registry

__all__ = ["Stage", "registry", "stage", "view"]


def stage(name: str) -> Stage:
    """The registered stage ``name``; an unknown name is refused in one line with the known ones."""
    reg = registry()
    if name not in reg:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(reg)}")
    return reg[name]


def view(p: Params, name: str) -> ParamsView:
    """What stage or notebook ``name`` may read of ``p``."""
    return ParamsView(p, stage(name).params, f"stage {name}")
