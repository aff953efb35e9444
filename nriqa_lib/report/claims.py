"""The one-page report: every declared table (:func:`nriqa_lib.tables.registry`), its figures, and a generated
verdict on each of the papers' claims, named by the tables' declarations (reads the tables' CSV files only)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..analysis.table import Table
from ..analysis.format import RANDOM_WEIGHTS, p_text
from ..core.io import atomic_write_text
from ..analysis.stats import holm
from ..tables.registry import registry

PARAMS = ("stats.alpha", "features.pretrained")
__all__ = ["PARAMS", "claims", "pooled_claims", "summary", "gather_tables", "write_report", "figures", "tables_in_order",
           "read_table", "round_p", "RANDOM_WEIGHTS", "COMPUTED_FIGURES"]

# the figures stage's figures (under results/), shown after the tables' own
COMPUTED_FIGURES = ("figures/pred_vs_mos.png", "figures/tsne_hidden.png", "figures/gradcam.png")


def figures(tables: Sequence[Table] | None = None) -> list[str]:
    """The report's figures, in order (under results/): every table's declared figures, then the figures stage's."""
    return [f"{t.folder}/figures/{f}.png" for t in _tables(tables) for f in t.figures] + list(COMPUTED_FIGURES)


def tables_in_order(tables: Sequence[Table] | None = None) -> list[str]:
    """Every table the report shows, in order (under results/, without the extension): each table's shown tables,
    then each table's pooled ones."""
    ts = _tables(tables)
    return ([f"{t.folder}/tables/{x}" for t in ts for x in t.shown]
            + [f"{t.folder}/tables/{x}" for t in ts for x in t.pooled_shown])


def _tables(tables: Sequence[Table] | None) -> Sequence[Table]:
    return registry() if tables is None else tables


def read_table(results: Path, rel: str) -> pd.DataFrame:
    """results/<rel> as a frame; an absent or empty file is an empty frame (a table this run did not produce)."""
    f = Path(results) / rel
    return pd.read_csv(f) if f.is_file() and f.stat().st_size > 1 else pd.DataFrame()


def _verdict(diff: float, p_adj: float, alpha: float) -> str:
    if p_adj < alpha:
        return "holds (significant)" if diff > 0 else "reversed (significant)"
    return "not significant"


def claims(results: str | Path, alpha: float = 0.05, tables: Sequence[Table] | None = None) -> pd.DataFrame:
    """Each claim of each declared table tested on the data at hand: where, estimated difference (SRCC), its
    table's Holm-adjusted p, verdict; then the claims this run could not test; then every pooled row
    (:func:`pooled_claims`)."""
    results = Path(results)
    out, untested = [], []
    for t in _tables(tables):
        def read(name: str, t: Table = t) -> pd.DataFrame:
            return read_table(results, f"{t.folder}/tables/{name}.csv")
        for c in t.claims:
            out += [(n, w, d, p, _verdict(d, p, alpha)) for n, w, d, p in c.cell_rows(read(c.tests) if c.tests
                                                                                     else pd.DataFrame())]
            untested += [(n, w, np.nan, np.nan, why) for n, w, why in c.untestable(read)]
    df = pd.DataFrame(out + untested, columns=["claim", "where", "srcc_diff", "p_holm", "verdict"]).assign(
        scope="cell", p_study=np.nan, p_below=False)
    pool = pooled_claims(results, alpha, tables)
    if len(pool):
        df = pd.concat([df, pool], ignore_index=True)
    df["p_below"] = df["p_below"].astype(bool)
    out = df[["claim", "scope", "where", "srcc_diff", "p_holm", "p_study", "p_below", "verdict"]].round({"srcc_diff": 4})
    return out.assign(p_holm=out["p_holm"].map(round_p), p_study=out["p_study"].map(round_p))


def round_p(p: float, digits: int = 4) -> float:
    """A p-value kept to ``digits`` significant digits (4 decimals would print a p of 3e-5 as 0)."""
    return float(f"{p:.{digits - 1}e}") if np.isfinite(p) else p


def pooled_claims(results: str | Path, alpha: float = 0.05, tables: Sequence[Table] | None = None) -> pd.DataFrame:
    """Every pooled row of every declared table (human-rated pools and the synthetic set's own rows), as claims, the
    tables in order of their ``findings_rank``. The human-rated rows are one family across the whole study:
    ``p_study`` is Holm over all of them, and their verdict uses it; the synthetic rows keep their table's Holm p and
    say they are not human opinions."""
    results = Path(results)
    out = []
    for t in sorted(_tables(tables), key=lambda t: t.findings_rank):      # stable: declaration order within a rank
        for c in t.claims:
            if c.pooled:
                pooled = read_table(results, f"{t.folder}/tables/{c.pooled}.csv")
                out += [_pooled_row(name, r, sign, alpha, prefix) for name, r, sign, prefix in c.pooled_refs(pooled)]
    df = pd.DataFrame(out, columns=["claim", "scope", "where", "srcc_diff", "p_holm", "p_study", "verdict", "p_below",
                                    "ci_low", "ci_high"])
    if not len(df):
        return df
    hum = df["scope"] == "pooled, human-rated"
    if hum.any():
        df.loc[hum, "p_study"] = holm(df.loc[hum, "p_study"].to_numpy(), alpha)[1]
        df.loc[hum, "verdict"] = [_verdict(d, p, alpha) for d, p in zip(df.loc[hum, "srcc_diff"], df.loc[hum, "p_study"])]
    df.loc[~hum, "p_study"] = np.nan
    return df


def _pooled_row(name: str, r, sign: float, alpha: float, prefix: str = "") -> tuple:
    """One pooled table row as a claim row: human-rated pools carry their raw p in p_study (Holm-adjusted over
    the study afterwards); synthetic rows their table's Holm p and a verdict marked as not about human opinions."""
    below = bool(getattr(r, "p_below", False))
    p = f"p {p_text(r.p, below, '<')}"
    lo, hi = (getattr(r, "ci_low", np.nan), getattr(r, "ci_high", np.nan))
    ci = (lo, hi) if sign > 0 else (-hi, -lo)
    if str(r.scope) == "human-rated":
        i2 = "" if not np.isfinite(r.i2) else f", I2 {r.i2:.0%}"
        where = (f"{prefix}{r.datasets}: {int(r.cells)} cell(s), {int(r.k)} dataset(s){i2}; {r.test}; {p}")
        return (name, "pooled, human-rated", where, sign * r.estimate, r.p_holm, r.p, "", below, *ci)
    where = f"{prefix}{r.datasets}: {int(r.cells)} cell(s); {r.test}; {p}"
    return (name, "synthetic set (SSIM proxy, not human opinions)", where, sign * r.estimate, r.p_holm, np.nan,
            _verdict(sign * r.estimate, r.p_holm, alpha) + " (synthetic proxy)", below, *ci)


def summary(claims_df: pd.DataFrame) -> str:
    """One line per claim (Markdown): in how many cells it holds, is reversed, or is not significant, then its
    pooled verdict on human-rated data (study-wide Holm p) and its synthetic-set rows. Every pooled row appears,
    also for a claim that has no per-cell row under the same name."""
    if not len(claims_df):
        return "No claim could be tested with the current params."
    lines = []
    for claim, g in claims_df.groupby("claim", sort=False):
        cells = g[g["scope"] == "cell"]
        parts = []
        if len(cells):
            v = cells["verdict"].value_counts()
            n = len(cells)
            parts = [f"{v.get(k, 0)} {label}" for k, label in (("holds (significant)", "hold"),
                     ("reversed (significant)", "reversed"), ("not significant", "not significant"))
                     if v.get(k, 0)]
            other = n - sum(v.get(k, 0) for k in ("holds (significant)", "reversed (significant)", "not significant"))
            if other:
                parts.append(f"{other} not testable here")
            parts = [f"{', '.join(parts)} (of {n} cell{'s' if n > 1 else ''})"]
        for r in g[g["scope"] == "pooled, human-rated"].itertuples():
            le = "<=" if r.p_below else ""        # Holm of a bootstrap p that is a bound (< 1/n_boot) is a bound too
            parts.append(f"pooled (human-rated; {r.where.split(';')[0]}) {r.srcc_diff:+.3f}, study-wide Holm p "
                         f"{le}{r.p_study:.3g}: {r.verdict}")
        for r in g[g["scope"].str.startswith("synthetic")].itertuples():
            parts.append(f"synthetic set ({r.where.split(';')[0]}) {r.srcc_diff:+.3f}: {r.verdict}")
        lines.append(f"- **{claim}**: " + "; ".join(parts))
    return "\n".join(lines)


def gather_tables(results: str | Path, ext: str = "md", tables: Sequence[Table] | None = None) -> str:
    """Every table of :func:`tables_in_order`, as Markdown (``ext="md"``) or LaTeX (``"tex"``)."""
    results = Path(results)
    parts = []
    for rel in tables_in_order(tables):
        f = results / f"{rel}.{ext}"
        if f.is_file():
            parts.append(f.read_text())
    return "\n\n".join(parts)


def write_report(out_dir: str | Path, tables_md: str, claims_df: pd.DataFrame, tables_tex: str = "",
                 banner: str = "") -> Path:
    """report.md (claims + tables), claims.tex and tables.tex (every table's LaTeX, in order); ``banner`` (e.g.
    the random-weights label of the smoke profile) heads the report."""
    from ..reporting.display import formatted
    out = Path(out_dir)
    shown = formatted(claims_df)       # as the notebooks print it: p to 3 digits, a bound as "<= p", no "nan"
    text = ("# nriqa report\n\n" + (f"**{banner}**\n\n" if banner else "") + "## Claims on the data at hand\n\n"
            + shown.to_markdown(index=False)
            + "\n\n## Tables\n\n" + tables_md + "\n")
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "claims.tex", shown.to_latex(index=False, escape=True))
    atomic_write_text(out / "tables.tex", tables_tex)
    return out / "report.md"
