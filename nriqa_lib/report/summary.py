"""The study's findings in one place (issue 25, 39): every pooled claim on human-rated data with its effect, 95% CI,
raw p, family-adjusted p and simultaneous interval, verdict, MDE at the verdict's level and the data it rests on, as results/summary.md (the README's "Findings" mirrors it),
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
from ..analysis.table import FAMILIES
from .claims import pooled_claims, round_p

__all__ = ["findings", "row_cells", "summary_markdown", "FINDINGS_COLUMNS", "JSON_FIELDS", "write_summary", "readme_block", "update_readme", "verdict_changes", "not_the_default_run", "SUMMARY_MD", "SUMMARY_JSON", "SUMMARY_PNG",
           "SUMMARY_CSV"]

SUMMARY_MD, SUMMARY_JSON, SUMMARY_PNG = "results/summary.md", "results/summary.json", "results/summary_forest.png"
SUMMARY_CSV = "results/summary.csv"     # the forest's data, one row per claim: what `dvc plots show/diff` draws
START, END = "<!-- findings:start (python -m nriqa_lib.report.summary --readme) -->", "<!-- findings:end -->"
LO, HI = DIFF_RANGE            # an SRCC difference lives in [-2, 2]: intervals are shown inside it


FINDINGS_COLUMNS = ("claim", "family", "table", "rests_on", "test", "estimate", "ci_low", "ci_high", "p", "m", "p_adj",
                    "adj_low", "adj_high", "level", "margin", "mde", "verdict")


def findings(results: str | Path, alpha: float = 0.05) -> pd.DataFrame:
    """One row per pooled claim on human-rated data (:func:`nriqa_lib.report.claims.pooled_claims`): claim, family,
    the table it comes from, the data it rests on, its test, estimate (SRCC difference in the claimed direction),
    95% CI, raw p, the family's size m and adjusted p, the interval at the adjusted level (simultaneous over the
    family; clipped to [-2, 2]), its level, the equivalence margin (TOST rows), the MDE at the verdict's own level
    and the verdict."""
    pool = pooled_claims(Path(results), alpha)
    if not len(pool):
        return pd.DataFrame(columns=list(FINDINGS_COLUMNS))
    hum = pool[pool["scope"] == "pooled, human-rated"]
    return pd.DataFrame({
        "claim": hum["claim"].to_numpy(), "family": hum["family"].to_numpy(), "table": hum["table"].to_numpy(),
        "rests_on": hum["where"].str.split(";").str[0].to_numpy(), "test": hum["test"].to_numpy(),
        "estimate": hum["srcc_diff"].to_numpy(float),
        "ci_low": np.clip(hum["ci_low"].to_numpy(float), LO, HI), "ci_high": np.clip(hum["ci_high"].to_numpy(float), LO, HI),
        **{c: hum[c].to_numpy(float) for c in ("p", "m", "p_adj", "adj_low", "adj_high", "level", "margin", "mde")},
        "verdict": hum["verdict"].to_numpy()})


def _level(x: float) -> str:
    """A confidence level as a percentage, to the digits that tell it apart (95%, 99.29%)."""
    return f"{100 * x:.4g}%"


def row_cells(r) -> dict[str, str]:
    """A findings row's printed cells (the README, the site and the report print these strings; the consistency
    test reads them back)."""
    fam = f"{r.family} (m {int(r.m)})" if r.family in FAMILIES else r.family
    mde = (f"+-{r.mde:.3f} (margin shown with 80% power)" if np.isfinite(r.margin) else f"{r.mde:.3f}")
    return {"claim": r.claim, "family (m)": fam, "rests on": r.rests_on,
            "effect (SRCC difference)": f"{r.estimate:+.3f}", "95% CI": f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
            "p": f"{r.p:.3g}" + (f" (TOST +-{r.margin:g})" if np.isfinite(r.margin) else ""),
            "adjusted p": f"{r.p_adj:.3g}" if r.family in FAMILIES else "-",
            "adjusted CI": f"[{r.adj_low:+.3f}, {r.adj_high:+.3f}] ({_level(r.level)})",
            "verdict": r.verdict, "MDE at its level": mde}


def summary_markdown(f: pd.DataFrame, banner: str = "", alpha: float = 0.05) -> str:
    """The findings as a Markdown table (the README's "Findings" block)."""
    label = f"**{banner}**\n\n" if banner else ""
    if not len(f):
        return label + "No claim could be tested on human-rated data with the current params.\n"
    rows = [row_cells(r) for r in f.itertuples()]
    cols = list(rows[0])
    head = label + "| " + " | ".join(cols) + " |\n|" + "|".join(
        ":--" if c in ("claim", "family (m)", "rests on", "95% CI", "adjusted CI", "verdict") else "--:"
        for c in cols) + "|\n"
    body = "\n".join("| " + " | ".join(r[c] for c in cols) + " |" for r in rows)
    fams = ", ".join(f"{k}: {FAMILIES[k]}" for k in FAMILIES if k in set(f["family"]))
    note = (f"\nEffect: the pooled SRCC difference in the claimed direction (> 0: the claim holds on these data), its "
            f"95% CI and its own test's p. A family is the claims one question asks ({fams}); m: its claims in this "
            f"run; adjusted p = min(1, m p) (Bonferroni), and the adjusted CI is the interval at level 1 - {alpha:g}/m, "
            f"simultaneous over the family: it excludes 0 exactly when the adjusted p is below {alpha:g} (the verdict). "
            f"Positive controls stand outside any family (read at {alpha:g}); a descriptive row repeats another "
            f"claim and has no verdict. A claim of no difference is a TOST (two one-sided tests) within its margin: "
            f"equivalence is shown when its interval at 1 - 2 x {alpha:g}/m lies inside the margin. MDE: the "
            f"difference the test detects with 80% power at its own level (for a TOST: the margin it shows with 80% "
            f"power when there is no difference): \"not significant\" says little about effects smaller than it.\n")
    return head + body + "\n" + note


def _keys(f: pd.DataFrame) -> list[str]:
    """A unique name per row: the claim, with the data it rests on where a claim has several rows."""
    dup = f["claim"].duplicated(keep=False)
    return [f"{c} [{w.split(':')[0]}]" if d else c for c, w, d in zip(f["claim"], f["rests_on"], dup)]


JSON_FIELDS = ("family", "table", "test", "estimate", "ci_low", "ci_high", "p", "m", "p_adj", "adj_low", "adj_high",
               "level", "margin", "mde", "verdict")


def _json_value(c: str, v):
    if isinstance(v, str):
        return v
    if c in ("p", "p_adj"):
        return round_p(float(v))
    if c == "m":
        return int(v)
    return None if not np.isfinite(v) else round(float(v), 4 if c != "level" else 6)


def write_summary(f: pd.DataFrame, root: str | Path = ".", banner: str = "", alpha: float = 0.05) -> list[Path]:
    """results/summary.md, .json, .csv and results/summary_forest.png under ``root`` (atomic writes)."""
    from ..reporting import plots
    root = Path(root)
    atomic_write_text(root / SUMMARY_MD, summary_markdown(f, banner, alpha))
    metrics = {k: {c: _json_value(c, getattr(r, c)) for c in JSON_FIELDS} for k, r in zip(_keys(f), f.itertuples())}
    atomic_write_text(root / SUMMARY_JSON, json.dumps(metrics, indent=1) + "\n")
    rows = pd.DataFrame({"claim": list(metrics), **{c: [m[c] for m in metrics.values()] for c in JSON_FIELDS}})
    atomic_write_text(root / SUMMARY_CSV, rows.to_csv(index=False, lineterminator="\n"))
    plots.save(plots.claims_forest(f.assign(label=_keys(f)), "Every claim pooled over human-rated data: 95% CI (thin) "
                                   "and the family-adjusted interval (thick)"), root / SUMMARY_PNG)
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
    """claim -> verdict of a findings table (the columns named "claim" and "verdict" in its header)."""
    lines = [r.strip().strip("|").split("|") for r in md.splitlines() if r.startswith("| ")]
    if not lines:
        return {}
    head = [c.strip() for c in lines[0]]
    if "claim" not in head or "verdict" not in head:
        return {}
    i, j = head.index("claim"), head.index("verdict")
    return {r[i].strip(): r[j].strip() for r in lines[1:] if len(r) == len(head)}


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
