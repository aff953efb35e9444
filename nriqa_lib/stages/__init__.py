"""One module per DVC stage (dvc.yaml runs ``python -m nriqa_lib.cli <stage>``).

Every stage module declares ``PARAMS`` (the params it reads: a section, or section.key) and ``run(p, ...)``,
which receives a :class:`nriqa_lib.config.ParamsView` of exactly those params: reading anything else raises.
dvc.yaml lists the same params and the library modules each stage imports (tests/test_pipeline.py checks
both). The notebook stages run one analysis function each (``nriqa_lib.analysis``), under its ``PARAMS``.
"""
from __future__ import annotations

import importlib

from ..config import Params, ParamsView

__all__ = ["STAGES", "NOTEBOOKS", "stage_module", "notebook_module", "view"]

# dvc.yaml stage -> module computing it
STAGES = {name: f"nriqa_lib.stages.{name}" for name in
          ("check", "synthetic", "splits", "features", "heads", "cross", "zeroshot", "figures", "finetune", "resolution")}
# notebook stage -> (notebook, module of its analysis function)
NOTEBOOKS = {"data_overview": "nriqa_lib.analysis.overview", "t1_backbones": "nriqa_lib.analysis.t1",
             "t2_activations": "nriqa_lib.analysis.t2", "t3_selection": "nriqa_lib.analysis.t3",
             "t4_zeroshot": "nriqa_lib.analysis.t4", "t5_resolution": "nriqa_lib.analysis.t5",
             "t6_regimes": "nriqa_lib.analysis.t6",
             "report": "nriqa_lib.reporting.report"}


def stage_module(name: str):
    return importlib.import_module(STAGES[name])


def notebook_module(name: str):
    if name not in NOTEBOOKS:
        raise KeyError(f"unknown notebook {name!r}; known: {', '.join(NOTEBOOKS)}")
    return importlib.import_module(NOTEBOOKS[name])


def view(p: Params, name: str) -> ParamsView:
    """What stage or notebook ``name`` may read of ``p``."""
    mod = stage_module(name) if name in STAGES else notebook_module(name)
    return ParamsView(p, mod.PARAMS, f"stage {name}")
