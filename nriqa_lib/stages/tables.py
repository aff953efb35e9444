"""The notebook stages: one :class:`~nriqa_lib.stages.registry.Stage` per table (its notebook calls the entry of
``module``, which reads the stages' outputs, computes the table (its pure ``compute``) and writes it, under that
module's ``PARAMS``), the data overview, and the report, which depends on every table's tables and figures. A new
table is one more entry of ``TABLES``."""
from __future__ import annotations

from importlib import import_module
from typing import Sequence

from .registry import Stage

__all__ = ["TABLES", "report_stage"]

HTML_TEMPLATE = "nriqa_lib/reporting/templates"     # the offline HTML template every notebook renders with


def _table(name: str, module: str, notebook: str, tag: str, deps: tuple[str, ...], desc: str,
           plots: tuple[str, ...] = (), metrics: bool = True, whole_folder: bool = False) -> Stage:
    return Stage(name=name, module=module, params=tuple(import_module(module).PARAMS), desc=desc,
                 deps=(f"notebooks/{name}.py", f"notebooks/{name}.ipynb", HTML_TEMPLATE, *deps), notebook=notebook, tag=tag, metrics=metrics,
                 whole_folder=whole_folder, plots=tuple(f"results/{notebook}/figures/{p}" for p in plots))


TABLES: tuple[Stage, ...] = (
    _table("data_overview", "nriqa_lib.analysis.overview", "data_overview", "splits-${splits.n_splits}_seed-${splits.seed}",
           ("data_manifests", "splits"), "every dataset's size, MOS range, splits and sample images", metrics=False, whole_folder=True),
    _table("t1_backbones", "nriqa_lib.analysis.t1", "t1", "head-${t1.head}", ("results/heads", "splits"),
           "T1 (P1): backbones with one identical head", ("t1_srcc.png",)),
    _table("t2_activations", "nriqa_lib.analysis.t2", "t2", "ref-${t2.reference}_epochs-${train.epochs}_lr-${train.lr}",
           ("results/heads", "results/cross", "splits"), "T2 (P1): the head's activation, in and across datasets",
           ("t2_forest.png",)),
    _table("t3_selection", "nriqa_lib.analysis.t3", "t3", "T-${t3.temperature}_hard-${t3.hard}_ent-${t3.entropy_weight}",
           ("results/heads", "splits"), "T3 (P1 + ours): learnable activation selection vs the best fixed head",
           ("t3_shares.png",)),
    _table("t4_zeroshot", "nriqa_lib.analysis.t4", "t4", "boot-${stats.n_boot}_seed-${stats.seed}", ("results/zeroshot",),
           "T4 (P2): CLIP-IQA, MA-CLIP and the magnitude cue, training-free", ("t4_srcc.png",)),
    _table("t5_resolution", "nriqa_lib.analysis.t5", "t5", "ref-${features.test_time}", ("results/resolution", "splits"),
           "T5 (beyond P1): input resolution and test-time views"),
    _table("t6_regimes", "nriqa_lib.analysis.t6", "t6", "ref-frozen_head-${t1.head}",
           ("results/heads", "results/finetune", "splits"), "T6 (P1): frozen vs P1's two recipes vs LoRA vs full fine-tuning"),
)


def report_stage(tables: Sequence[Stage]) -> Stage:
    """The report: every claim of every table (its metrics), the tables and the figures."""
    from ..reporting.summary import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, SUMMARY_PNG
    with_tables = [t for t in tables if t.metrics]
    deps = ("notebooks/report.py", "notebooks/report.ipynb", HTML_TEMPLATE, "references/published.yaml", *[f"{t.out_dir}/tables" for t in with_tables],
            *[f"{t.out_dir}/figures" for t in with_tables], "results/figures")
    return Stage(name="report", module="nriqa_lib.reporting.summary",
                 params=tuple(import_module("nriqa_lib.reporting.report").PARAMS), deps=deps, notebook="report",
                 tag="alpha-${stats.alpha}", whole_folder=True,
                 outs=({SUMMARY_MD: {"cache": False}}, {SUMMARY_PNG: {"cache": False}}, {SUMMARY_CSV: {"cache": False}}),
                 headline=(SUMMARY_JSON,),
                 plots=({SUMMARY_CSV: {"template": "bar_horizontal", "x": "estimate", "y": "claim",
                                       "title": "Every claim's pooled effect (SRCC difference; > 0: the claim holds)"}},),
                 desc="every claim of P1 and P2 with its verdict, the tables and the key figures; the findings "
                      "(results/summary.*)")
