"""nriqa_lib.report.claims and the report notebook's helpers: claims printed as the notebooks print them, the
tables section of the report (an empty table named, not a crash)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from nriqa_lib.report.claims import round_p


def test_the_report_prints_claims_as_the_notebooks_do(tmp_path):
    """report.md/claims.tex: a p of 2.7e-05 is not printed 0, a cell without a family-adjusted p is blank, not
    nan, and a Holm p of a bootstrap bound reads as a bound."""
    from nriqa_lib.report.claims import write_report
    c = pd.DataFrame({"claim": ["x", "y"], "scope": ["cell", "pooled, human-rated"], "where": ["clive/a", "clive"],
                      "srcc_diff": [0.301, 0.2], "p_holm": [round_p(2.6634e-05), 0.014], "p_adj": [np.nan, 0.014],
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


_FIND = ("| claim | rests on | effect (SRCC difference) | 95% CI | adjusted p | verdict | MDE at its level |\n"
         "|:--|:--|--:|:--|--:|:--|--:|\n")


def test_findings_verdict_changes_claim_by_claim():
    """Issue 37 E4: replacing the README's Findings prints what it changes: a verdict that moved, a claim added or
    gone (hand-made tables)."""
    from nriqa_lib.report.summary import verdict_changes
    old = (_FIND + "| A | clive | +0.1 | [0, 0.2] | 0.01 | holds | 0.1 |\n"
           "| B | clive | +0 | [-0.1, 0.1] | 1 | not significant | 0.1 |\n")
    new = (_FIND + "| A | clive | +0.1 | [0, 0.2] | 0.2 | not significant | 0.1 |\n"
           "| C | clive | +0.2 | [0.1, 0.3] | 0.01 | holds | 0.1 |\n")
    assert verdict_changes(old, new) == ["  A: holds -> not significant", "  + C (holds)", "  - B (not significant)"]
    assert verdict_changes(old, old) == []


def test_the_readme_findings_are_replaced_only_from_the_default_study(tmp_path, monkeypatch):
    """Issue 37 E4: `python -m nriqa_lib.report.summary --readme` replaced the README's Findings with whatever run
    was in results/ (a 40-image, 2-split try: 18 claims -> 3), silently. Now it refuses, in one line and with exit
    status 1, when params.yaml differs from the committed one or the report is not up to date (`dvc status`), and
    leaves the README as it was; --force replaces anyway and prints the verdicts it changed."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from nriqa_lib.report.summary import END, START, not_the_default_run
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(*cmd):
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)
    readme = f"# x\n{START}\n" + _FIND + "| A | clive | +0.1 | [0, 0.2] | 0.01 | holds | 0.1 |\n" + f"{END}\nrest\n"
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "params.yaml").write_text("data:\n  limit: 0\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.md").write_text(_FIND + "| A | clive | +0.1 | [0, 0.2] | 0.5 | not significant | 0.1 |\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        assert run(*cmd).returncode == 0
    (tmp_path / "params.yaml").write_text("data:\n  limit: 40\n")          # a quick try's params
    r = run(sys.executable, "-m", "nriqa_lib.report.summary", "--readme")
    assert r.returncode == 1 and r.stderr.strip() == (
        "nriqa: README.md's Findings not replaced: params.yaml differs from the committed one (they mirror the "
        "default study; --force to replace them anyway)")
    assert (tmp_path / "README.md").read_text() == readme
    r = run(sys.executable, "-m", "nriqa_lib.report.summary", "--readme", "--force")
    assert r.returncode == 0 and "verdicts changed:\n  A: holds -> not significant" in r.stdout
    # the committed params, but the report stale, or no DVC answer: refused too
    assert run("git", "checkout", "-q", "params.yaml").returncode == 0
    monkeypatch.chdir(tmp_path)
    assert not_the_default_run(lambda: "{}") is None
    assert "dvc status report" in not_the_default_run(lambda: '{"report": [{"changed deps": {}}]}')
    assert "dvc status report" in not_the_default_run(lambda: "ERROR: not a DVC repository")
