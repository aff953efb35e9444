"""The study's tables, one module each (T1..T6 and the data overview): its pure ``compute``, the entry its notebook
calls (reads the stages' outputs, returns the Result unwritten) and its declaration ``TABLE``
(:class:`nriqa_lib.analysis.table.Table`: params, notebook tag, data, shown tables and figures, claims).
:func:`nriqa_lib.tables.registry.registry` collects the declarations; a new module with a ``TABLE`` is a new table
everywhere (dvc.yaml, the CLI, the report, the findings, the site, the checks) with no other file edited."""
