"""The Stage registry: one :class:`Stage` per DVC stage, declared beside the code that computes it (a compute
stage's module holds ``STAGE``; the notebook stages, one per table, are entries of :mod:`nriqa_lib.stages.tables`).
dvc.yaml (:mod:`nriqa_lib.stages.dvcfile`), the CLI's subcommands (:mod:`nriqa_lib.cli`), the params each stage may
read (:func:`nriqa_lib.stages.view`) and the pipeline tests are all derived from :func:`registry`.

Adding a table: an analysis module (``nriqa_lib/analysis/tN.py``: ``PARAMS``, a pure ``compute`` and the entry that
reads its inputs and writes it), its notebook (``notebooks/tN_<name>.py``, built by ``scripts/make_notebooks.py``)
and one ``Stage(..., notebook="tN")`` in ``stages/tables.py`` (+ its params section if it has knobs); then
``python -m nriqa_lib.stages.dvcfile``. The report depends on every table's outputs and picks the new one up.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["Option", "Stage", "registry", "COMPUTE_MODULES", "D"]

D = "${item.dataset}"          # the dataset of a matrix stage, in dvc.yaml's templating


@dataclass(frozen=True)
class Option:
    """A command-line option of a compute stage: ``--flag`` -> ``run(p, <dest>=...)``."""
    flag: str
    help: str = ""
    repeat: bool = False                  # may be given several times (a list)
    choices: tuple[str, ...] | None = None
    dest: str = ""                        # run()'s keyword (default: the flag's name, '-' -> '_')

    @property
    def keyword(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")


BACKBONE = Option("--backbone", "restrict to this backbone (repeatable)", repeat=True, dest="backbones")


@dataclass(frozen=True)
class Stage:
    """One DVC stage.

    ``module``: for a compute stage the module whose ``run(p, ...)`` computes it (``python -m nriqa_lib.cli <name>``),
    for a notebook stage the analysis module its notebook calls. ``params``: the params it reads (a section or
    section.key; the stage sees nothing else, and dvc.yaml lists exactly these). ``deps``/``outs``: data it reads
    and writes besides code (``D`` = the dataset of a ``matrix`` stage); a notebook stage's outputs follow from
    ``notebook`` (its folder under results/) and ``tag`` (the parameter label in its file names). ``metrics``: the
    stage writes results/<notebook>/metrics.json (a table: committed, not listed as DVC metrics); ``headline``: the
    metrics files DVC lists (the study's summary); ``plots``: figures dvc.yaml lists as plots."""
    name: str
    module: str
    params: tuple[str, ...]
    desc: str = ""
    deps: tuple[str, ...] = ()
    outs: tuple[Any, ...] = ()
    matrix: bool = False                  # one stage per dataset of data.datasets (--dataset ${item.dataset})
    launched: bool = False                # the command starts with ${run.launcher} (python or torchrun)
    dvc_args: str = ""                    # extra arguments of the command in dvc.yaml
    options: tuple[Option, ...] = ()      # command-line options of run() besides --dataset
    writes: tuple[str, ...] = ()          # folders the CLI checks writable before any work
    always_changed: bool = False
    whole_params_file: bool = False       # dvc.yaml: depends on all of params.yaml (the check stage)
    notebook: str | None = None           # notebook stage: results/<notebook>/
    tag: str = ""
    whole_folder: bool = False            # notebook stage whose output is its whole folder (overview, report)
    metrics: bool = False                 # a table: writes results/<notebook>/metrics.json (committed to git)
    headline: tuple[str, ...] = ()        # the metrics files DVC lists (`dvc metrics show/diff`; committed)
    plots: tuple[Any, ...] = ()           # a figure (path) or a data plot ({csv: {template, x, y}})

    @property
    def is_notebook(self) -> bool:
        return self.notebook is not None

    @property
    def out_dir(self) -> str:
        return f"results/{self.notebook}"

    def load(self):
        """The module that computes this stage (compute) or holds its analysis (notebook)."""
        return importlib.import_module(self.module)

    def command(self) -> str:
        if self.is_notebook:
            return f"python -m nriqa_lib.cli notebook {self.name} --out {self.out_dir} --tag {self.tag}"
        launcher = "${run.launcher}" if self.launched else "python"
        args = " ".join(filter(None, [f"--dataset {D}" if self.matrix else "", self.dvc_args]))
        return f"{launcher} -m nriqa_lib.cli {self.name}" + (f" {args}" if args else "")

    def outputs(self) -> list:
        if not self.is_notebook:
            return list(self.outs)
        if self.whole_folder:
            return [self.out_dir, *self.outs]
        stem = f"{self.name}__{self.tag}"
        table = [{f"{self.out_dir}/metrics.json": {"cache": False}}] if self.metrics else []
        return [f"{self.out_dir}/{stem}.ipynb", f"{self.out_dir}/{stem}.html", f"{self.out_dir}/tables",
                f"{self.out_dir}/figures", *table, *self.outs]


# the compute stages, in pipeline order: check -> synthetic -> splits -> features -> heads / cross / zeroshot /
# figures / finetune / resolution; then the notebook stages of stages/tables.py (T1..T6, overview, report)
COMPUTE_MODULES = ("check", "synthetic", "splits", "features", "heads", "cross", "zeroshot", "figures", "finetune",
                   "resolution")


def registry(extra: Sequence[Stage] = ()) -> dict[str, Stage]:
    """Every stage by name, in dvc.yaml's order; ``extra`` stages are added before the report (a toy table in a
    test, a table of your own before it has a module)."""
    from .tables import TABLES, report_stage
    stages = [importlib.import_module(f"nriqa_lib.stages.{m}").STAGE for m in COMPUTE_MODULES]
    tables = [*TABLES, *extra]
    out = {s.name: s for s in [*stages, *tables, report_stage(tables)]}
    if len(out) != len(stages) + len(tables) + 1:
        raise ValueError("two stages of the registry share a name")
    return out
