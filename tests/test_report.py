"""nriqa_lib.reporting.report and the report notebook's helpers: claims printed as the notebooks print them, the
tables section of the report (an empty table named, not a crash)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from nriqa_lib.reporting.report import round_p


def test_the_report_prints_claims_as_the_notebooks_do(tmp_path):
    """report.md/claims.tex: a p of 2.7e-05 is not printed 0, a cell without a study-wide p is blank, not nan, and
    a Holm p of a bootstrap bound reads as a bound."""
    from nriqa_lib.reporting.report import write_report
    c = pd.DataFrame({"claim": ["x", "y"], "scope": ["cell", "pooled, human-rated"], "where": ["clive/a", "clive"],
                      "srcc_diff": [0.301, 0.2], "p_holm": [round_p(2.6634e-05), 0.014], "p_study": [np.nan, 0.014],
                      "p_below": [False, True], "verdict": ["holds (significant)", "holds (significant)"]})
    write_report(tmp_path, "", c)
    md = (tmp_path / "report.md").read_text()
    row_x = next(line for line in md.splitlines() if line.startswith("| x "))
    assert "2.66e-05" in row_x and "nan" not in md and "<= 0.014" in md
    assert "2.66e-05" in (tmp_path / "claims.tex").read_text()


def test_the_report_tables_section_shows_every_table_and_says_when_one_has_no_rows(tmp_path, monkeypatch):
    """An empty table (the smoke profile's T6 tests: a 1-byte file) is named with 'no rows', not a crash; tests
    are folded to their key columns; an absent table is skipped."""
    import IPython.display
    from nriqa_lib.reporting.display import tables_section
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    t = tmp_path / "t6" / "tables"
    t.mkdir(parents=True)
    (t / "t6_tests.csv").write_text("\n")
    (t / "t6_tests.md").write_text("T6: each regime vs frozen\n\n")
    (t / "t6_x_tests.csv").write_text("dataset,a,b,diff,sd_diff,p,p_holm,significant\nclive,p1,frozen,0.1,0.02,0.01,0.02,True\n")
    tables_section(tmp_path, ["t6/tables/t6_tests", "t6/tables/t6_x_tests", "t6/tables/absent"])
    assert len(shown) == 2
    assert shown[0].data == "*T6: each regime vs frozen*: no rows with these params."
    assert "<details><summary>t6_x_tests</summary>" in shown[1].data and "sd_diff" not in shown[1].data
