"""How a stage is declared (a leaf: no nriqa_lib import), one class per kind: :class:`ComputeStage` (a compute
stage's ``STAGE``, declared in its module under nriqa_lib/stages/) and :class:`NotebookStage` (a declared table's
stage or the report, :mod:`nriqa_lib.pipeline.tables`), and a compute stage's command-line :class:`Option`.
dvc.yaml, the CLI and the params each stage may read are derived from these declarations by the rest of
:mod:`nriqa_lib.pipeline`."""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "Stage", "ComputeStage", "NotebookStage", "BACKBONE", "D"]

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
    """What every DVC stage declares: its ``name``, the ``module`` it runs, the ``params`` it reads (a section or
    section.key; the stage sees nothing else, and dvc.yaml lists exactly these), the data it reads (``deps``) and
    writes besides its own outputs (``outs``; ``D`` = the dataset of a matrix stage), the metrics files DVC lists
    (``headline``) and the figures it lists as ``plots``. A stage is a :class:`ComputeStage` or a
    :class:`NotebookStage`."""
    name: str
    module: str
    params: tuple[str, ...]
    desc: str = ""
    deps: tuple[str, ...] = ()
    outs: tuple[Any, ...] = ()
    headline: tuple[str, ...] = ()        # the metrics files DVC lists (`dvc metrics show/diff`; committed)
    plots: tuple[Any, ...] = ()           # a figure (path) or a data plot ({csv: {template, x, y}})

    is_notebook = False
    matrix = False
    always_changed = False
    whole_params_file = False

    def load(self):
        """The module that computes this stage (compute) or holds its table (notebook)."""
        return importlib.import_module(self.module)

    def command(self) -> str:
        raise NotImplementedError

    def outputs(self) -> list:
        return list(self.outs)


@dataclass(frozen=True)
class ComputeStage(Stage):
    """A stage that runs ``module.run(p, ...)`` (``python -m nriqa_lib.cli <name>``), declared as ``STAGE`` in its
    module under nriqa_lib/stages/."""
    matrix: bool = False                  # one stage per dataset of data.datasets (--dataset ${item.dataset})
    launched: bool = False                # the command starts with ${run.launcher} (python or torchrun)
    dvc_args: str = ""                    # extra arguments of the command in dvc.yaml
    options: tuple[Option, ...] = ()      # command-line options of run() besides --dataset
    writes: tuple[str, ...] = ()          # folders the CLI checks writable before any work
    always_changed: bool = False
    whole_params_file: bool = False       # dvc.yaml: depends on all of params.yaml (the check stage)

    def command(self) -> str:
        launcher = "${run.launcher}" if self.launched else "python"
        args = " ".join(filter(None, [f"--dataset {D}" if self.matrix else "", self.dvc_args]))
        return f"{launcher} -m nriqa_lib.cli {self.name}" + (f" {args}" if args else "")


@dataclass(frozen=True)
class NotebookStage(Stage):
    """A stage that runs notebooks/<name>.ipynb into results/<notebook>/ (a declared table, or the report); its
    outputs follow from ``notebook`` and ``tag`` (the parameter label of its file names: declared params only).
    ``metrics``: it writes results/<notebook>/metrics.json (committed, not listed as DVC metrics);
    ``whole_folder``: its output is its whole folder."""
    notebook: str = ""
    tag: str = ""
    whole_folder: bool = False
    metrics: bool = False

    is_notebook = True

    @property
    def out_dir(self) -> str:
        return f"results/{self.notebook}"

    def tag_params(self) -> set[str]:
        """The params named in ``tag`` (each must be one the stage declares: tests/pipeline/test_pipeline.py)."""
        return set(re.findall(r"\$\{([^}]+)\}", self.tag))

    def command(self) -> str:
        return f"python -m nriqa_lib.cli notebook {self.name} --out {self.out_dir} --tag {self.tag}"

    def outputs(self) -> list:
        if self.whole_folder:
            return [self.out_dir, *self.outs]
        stem = f"{self.name}__{self.tag}"
        table = [{f"{self.out_dir}/metrics.json": {"cache": False}}] if self.metrics else []
        return [f"{self.out_dir}/tables", f"{self.out_dir}/figures", *table, f"{self.out_dir}/{stem}.ipynb",
                f"{self.out_dir}/{stem}.html", *self.outs]
