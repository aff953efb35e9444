"""The study's findings in one place (issue 25): every pooled claim on human-rated data with its effect, 95% CI,
study-wide Holm p, verdict and the data it rests on, as results/summary.md (the README's "Findings" mirrors it),
results/summary.json (the headline metrics DVC lists: ``dvc metrics show / diff``) and results/summary_forest.png
(one forest plot of every claim). Written by the report stage from the tables' pooled rows
(:func:`nriqa_lib.report.claims.claims`); nothing here computes a statistic.

``python -m nriqa_lib.report.summary --readme`` copies results/summary.md into README.md between its markers,
only from the default study (the committed params.yaml, the report up to date; ``--force`` otherwise), and prints
the verdicts it changed; scripts/check_outputs.py fails when the two differ after a run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.compare import DIFF_RANGE
from ..core.io import atomic_write_text
from ..analysis.format import p_text
from .claims import pooled_claims, round_p

__all__ = ["findings", "write_summary", "readme_block", "update_readme", "verdict_changes", "not_the_default_run", "SUMMARY_MD", "SUMMARY_JSON", "SUMMARY_PNG",
           "SUMMARY_CSV"]

SUMMARY_MD, SUMMARY_JSON, SUMMARY_PNG = "results/summary.md", "results/summary.json", "results/summary_forest.png"
SUMMARY_CSV = "results/summary.csv"     # the forest's data, one row per claim: what `dvc plots show/diff` draws
START, END = "<!-- findings:start (python -m nriqa_lib.report.summary --readme) -->", "<!-- findings:end -->"
LO, HI = DIFF_RANGE            # an SRCC difference lives in [-2, 2]: intervals are shown inside it


def findings(results: str | Path, alpha: float = 0.05) -> pd.DataFrame:
    """One row per pooled claim on human-rated data: claim, the data it rests on, estimate (SRCC difference), 95%
    CI (clipped to [-2, 2]), the study-wide Holm p and its verdict."""
    pool = pooled_claims(Path(results), alpha)
    if not len(pool):
        return pd.DataFrame(columns=["claim", "rests_on", "estimate", "ci_low", "ci_high", "p_study", "p_below",
                                     "verdict"])
    hum = pool[pool["scope"] == "pooled, human-rated"]
    where = hum["where"].str.split(";").str[0]
    return pd.DataFrame({
        "claim": hum["claim"].to_numpy(), "rests_on": where.to_numpy(),
        "estimate": hum["srcc_diff"].to_numpy(float),
        "ci_low": np.clip(hum["ci_low"].to_numpy(float), LO, HI), "ci_high": np.clip(hum["ci_high"].to_numpy(float), LO, HI),
        "p_study": hum["p_study"].to_numpy(float), "p_below": hum["p_below"].to_numpy(bool),
        "verdict": hum["verdict"].to_numpy()})


def summary_markdown(f: pd.DataFrame, banner: str = "") -> str:
    """The findings as a Markdown table (the README's "Findings" block)."""
    label = f"**{banner}**\n\n" if banner else ""
    if not len(f):
        return label + "No claim could be tested on human-rated data with the current params.\n"
    head = label + (
        "| claim | rests on | effect (SRCC difference) | 95% CI | study-wide Holm p | verdict |\n"
        "|:--|:--|--:|:--|--:|:--|\n")
    rows = [f"| {r.claim} | {r.rests_on} | {r.estimate:+.3f} | [{r.ci_low:+.3f}, {r.ci_high:+.3f}] | "
            f"{p_text(r.p_study, r.p_below)} | {r.verdict} |" for r in f.itertuples()]
    note = ("\nEffect: the pooled SRCC difference in the claimed direction (> 0: the claim holds on these data); the "
            "95% CI is the claim's own, unadjusted; the verdict uses the Holm p over every claim of the study, so a CI "
            "that excludes 0 can go with \"not significant\". `<=`: a bound from a bootstrap's resolution.\n")
    return head + "\n".join(rows) + "\n" + note


def _keys(f: pd.DataFrame) -> list[str]:
    """A unique name per row: the claim, with the data it rests on where a claim has several rows."""
    dup = f["claim"].duplicated(keep=False)
    return [f"{c} [{w.split(':')[0]}]" if d else c for c, w, d in zip(f["claim"], f["rests_on"], dup)]


def write_summary(f: pd.DataFrame, root: str | Path = ".", banner: str = "") -> list[Path]:
    """results/summary.md, .json, .csv and results/summary_forest.png under ``root`` (atomic writes)."""
    from ..reporting import plots
    root = Path(root)
    atomic_write_text(root / SUMMARY_MD, summary_markdown(f, banner))
    metrics = {k: {"estimate": round(float(r.estimate), 4), "ci_low": round(float(r.ci_low), 4),
                   "ci_high": round(float(r.ci_high), 4), "p_study": round_p(float(r.p_study)),
                   "verdict": r.verdict} for k, r in zip(_keys(f), f.itertuples())}
    atomic_write_text(root / SUMMARY_JSON, json.dumps(metrics, indent=1) + "\n")
    rows = pd.DataFrame({"claim": list(metrics), **{c: [m[c] for m in metrics.values()]
                                                    for c in ("estimate", "ci_low", "ci_high", "p_study", "verdict")}})
    atomic_write_text(root / SUMMARY_CSV, rows.to_csv(index=False, lineterminator="\n"))
    plots.save(plots.claims_forest(f.assign(label=_keys(f)), "Every claim pooled over human-rated data (95% CI)"),
               root / SUMMARY_PNG)
    return [root / SUMMARY_MD, root / SUMMARY_JSON, root / SUMMARY_PNG, root / SUMMARY_CSV]


def readme_block(readme: str) -> str:
    """The text between the README's findings markers."""
    m = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), readme, flags=re.S)
    if m is None:
        raise ValueError(f"README.md has no findings markers ({START} ... {END})")
    return m.group(1)


def update_readme(readme: str | Path = "README.md", summary: str | Path = SUMMARY_MD) -> bool:
    """Copy results/summary.md into README.md between the markers; True if the README changed."""
    readme, text = Path(readme), Path(summary).read_text()
    old = readme.read_text()
    new = old.replace(START + "\n" + readme_block(old) + END, START + "\n" + text + END)
    if new != old:
        atomic_write_text(readme, new)
    return new != old


def _verdicts(md: str) -> dict[str, str]:
    """claim -> verdict of a findings table (its first and last columns)."""
    rows = [r.strip().strip("|").split("|") for r in md.splitlines() if r.startswith("| ") and not r.startswith("| claim")]
    return {r[0].strip(): r[-1].strip() for r in rows if len(r) >= 6}


def verdict_changes(old_md: str, new_md: str) -> list[str]:
    """What replacing the findings ``old_md`` by ``new_md`` changes, claim by claim: a verdict that moved, a claim
    added or gone (the rest of a row, effect and CI, may move without a line here)."""
    old, new = _verdicts(old_md), _verdicts(new_md)
    out = [f"  {c}: {old[c]} -> {new[c]}" for c in old if c in new and old[c] != new[c]]
    out += [f"  + {c} ({new[c]})" for c in new if c not in old]
    out += [f"  - {c} ({old[c]})" for c in old if c not in new]
    return out


def not_the_default_run(run_status=None) -> str | None:
    """Why results/ may not be the default study (the committed params.yaml, every stage up to date), or None. The
    README's Findings mirror the default study only (issue 37 E4: a 40-image, 2-split try replaced its 18 claims
    with 3, silently). ``run_status``: a stand-in for ``dvc status report --json`` (tests)."""
    import subprocess
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"]).returncode != 0:
        return "params.yaml differs from the committed one"
    out = run_status() if run_status else subprocess.run(["dvc", "status", "report", "--json"], capture_output=True,
                                                         text=True).stdout
    try:
        stale = json.loads(out or "null")
    except json.JSONDecodeError:
        stale = None
    if stale != {}:
        return "`dvc status report` does not say the report is up to date with params.yaml and the code"
    return None


if __name__ == "__main__":
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="python -m nriqa_lib.report.summary", description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="copy results/summary.md into README.md's Findings (only "
                    "from the default study: the committed params.yaml, the report up to date)")
    ap.add_argument("--force", action="store_true", help="replace the Findings from any run")
    a = ap.parse_args()
    if a.readme:
        why = None if a.force else not_the_default_run()
        if why:
            sys.exit(f"nriqa: README.md's Findings not replaced: {why} (they mirror the default study; --force to "
                     f"replace them anyway)")
        changes = verdict_changes(readme_block(Path("README.md").read_text()), Path(SUMMARY_MD).read_text())
        print("README.md updated" if update_readme() else "README.md already current")
        print("\n".join(["verdicts changed:", *changes]) if changes else "no verdict changed")
