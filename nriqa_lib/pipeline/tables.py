"""The notebook stages: one per declared table (:func:`nriqa_lib.tables.registry`: its notebook calls the table's
entry under the params it declares) and the report, which depends on every table's tables and figures and on the
declarations themselves (its claims are named there). A new table is a new module of nriqa_lib/tables with a
``TABLE``: nothing here changes."""
from __future__ import annotations

from typing import Sequence

from ..analysis.table import Table
from .spec import NotebookStage

__all__ = ["table_stages", "table_stage", "report_stage", "HTML_TEMPLATE"]

HTML_TEMPLATE = "nriqa_lib/reporting/templates"     # the offline HTML template every notebook renders with


def table_stage(t: Table) -> NotebookStage:
    """A table's notebook stage: it runs notebooks/<name>.ipynb (built from notebooks/<name>.py: both are deps, so an
    edited source is never left unrendered) into results/<folder>/ under exactly the params the table declares."""
    return NotebookStage(name=t.name, module=t.module, params=t.params, desc=t.desc,
                 deps=(f"notebooks/{t.name}.py", f"notebooks/{t.name}.ipynb", HTML_TEMPLATE, *t.deps),
                 notebook=t.folder, tag=t.tag, metrics=t.metrics, whole_folder=t.whole_folder,
                 plots=tuple(f"results/{t.folder}/figures/{p}.png" for p in t.plots))


def table_stages(tables: Sequence[Table] | None = None) -> list[NotebookStage]:
    from ..tables.registry import registry
    return [table_stage(t) for t in (registry() if tables is None else tables)]


def report_stage(tables: Sequence[NotebookStage]) -> NotebookStage:
    """The report: every claim of every table (its metrics), the tables and the figures."""
    from importlib import import_module
    from ..report.summary import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, SUMMARY_PNG
    with_tables = [t for t in tables if t.metrics]
    deps = ("notebooks/report.py", "notebooks/report.ipynb", HTML_TEMPLATE, "references/published.yaml",
            *[f"{t.out_dir}/tables" for t in with_tables], *[f"{t.out_dir}/figures" for t in with_tables],
            "results/figures")
    return NotebookStage(name="report", module="nriqa_lib.report.summary",
                 params=tuple(import_module("nriqa_lib.report.claims").PARAMS), deps=deps, notebook="report",
                 tag="alpha-${stats.alpha}", whole_folder=True,
                 outs=({SUMMARY_MD: {"cache": False}}, {SUMMARY_PNG: {"cache": False}},
                       {SUMMARY_CSV: {"cache": False}}),
                 headline=(SUMMARY_JSON,),
                 plots=({SUMMARY_CSV: {"template": "bar_horizontal", "x": "estimate", "y": "claim"}},),
                 desc="every claim of P1 and P2 with its verdict, the tables and the key figures; the findings "
                      "(results/summary.*)")
