"""How a notebook renders a table: export (CSV/Markdown/LaTeX, metrics JSON, :func:`.export.write_result`, the one
writer of a table's folder), figures (:mod:`.plots`, seaborn), display helpers and the offline HTML template. The
report stage's own modules are :mod:`nriqa_lib.report`."""
