"""The one-page report: every declared table (:func:`nriqa_lib.tables.registry`), its figures, and a generated
verdict on each of the papers' claims, named by the tables' declarations (reads the tables' CSV files only)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..analysis.table import FAMILIES, Table, family_of
from ..analysis.format import RANDOM_WEIGHTS, p_text
from ..core.io import atomic_write_text
from ..tables.registry import registry

PARAMS = ("stats.alpha", "features.pretrained")
__all__ = ["PARAMS", "claims", "pooled_claims", "summary", "gather_tables", "write_report", "figures", "tables_in_order",
           "read_table", "round_p", "RANDOM_WEIGHTS", "COMPUTED_FIGURES", "POOLED_CLAIM_COLUMNS", "adjusted_name"]

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
    """Each claim of each declared table tested on the data at hand: one row per cell (where, estimated difference
    in SRCC, its table's Holm-adjusted p ``p_holm``, verdict); then the claims this run could not test; then every
    pooled row (:func:`pooled_claims`: raw p, family-adjusted ``p_adj``, simultaneous interval, MDE, verdict)."""
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
        scope="cell", p_below=False)
    df["family"] = [family_of(c) for c in df["claim"]]
    pool = pooled_claims(results, alpha, tables)
    if len(pool):
        df = pd.concat([df, pool], ignore_index=True)
    df["p_below"] = df["p_below"].astype(bool)
    cols = ["claim", "family", "scope", "where", "srcc_diff", "ci_low", "ci_high", "p", "p_holm", "m", "p_adj",
            "adj_low", "adj_high", "mde", "p_below", "verdict"]
    out = df.reindex(columns=cols).round({c: 4 for c in ("srcc_diff", "ci_low", "ci_high", "adj_low", "adj_high",
                                                          "mde")})
    return out.assign(**{c: out[c].map(round_p) for c in ("p", "p_holm", "p_adj")})


def round_p(p: float, digits: int = 4) -> float:
    """A p-value kept to ``digits`` significant digits (4 decimals would print a p of 3e-5 as 0)."""
    return float(f"{p:.{digits - 1}e}") if np.isfinite(p) else p


# the columns of a pooled claim (one row per pooled row of a declared table; the findings are its human-rated rows)
POOLED_CLAIM_COLUMNS = ("claim", "family", "table", "scope", "where", "test", "srcc_diff", "se", "df", "ci_low",
                        "ci_high", "p", "p_below", "m", "p_adj", "adj_low", "adj_high", "level", "margin", "mde",
                        "p_holm", "verdict")


def pooled_claims(results: str | Path, alpha: float = 0.05, tables: Sequence[Table] | None = None) -> pd.DataFrame:
    """Every pooled row of every declared table (human-rated pools and the synthetic set's own rows), as claims, the
    tables in order of their ``findings_rank``, each in its claimed direction (``srcc_diff`` > 0: the claim holds).

    The human-rated rows are the findings (issue 39): ``p`` is the row's own test, ``p_adj`` = min(1, m p) with m
    the claims of its family in this run (:data:`nriqa_lib.analysis.table.FAMILIES`; Bonferroni: its simultaneous
    interval ``adj_low``/``adj_high``, estimate -+ t_{1-alpha/2m} se, excludes 0 exactly when p_adj < alpha, which
    no interval does for Holm's step-down verdicts), the verdict p_adj < alpha, and ``mde``: the difference the
    test detects with 80% power at its own level alpha/m. A claim of no difference (its Claims' ``equivalence``
    margin) is a TOST: p = the larger one-sided p, the interval at 1 - 2 alpha/m, equivalence shown when it lies
    inside -+margin (p_adj < alpha); its ``mde``: the margin it shows with 80% power at a true difference of 0.
    Positive controls (family "control") are read at alpha (m = 1); "descriptive" rows carry no verdict. The
    synthetic rows keep their table's Holm p (``p_holm``) and say they are not human opinions."""
    results = Path(results)
    out = []
    for t in sorted(_tables(tables), key=lambda t: t.findings_rank):      # stable: declaration order within a rank
        for c in t.claims:
            if c.pooled:
                pooled = read_table(results, f"{t.folder}/tables/{c.pooled}.csv")
                out += [_pooled_row(name, r, sign, alpha, prefix, c.margin(name), t.folder)
                        for name, r, sign, prefix in c.pooled_refs(pooled)]
    df = pd.DataFrame(out, columns=list(POOLED_CLAIM_COLUMNS))
    hum = df["scope"] == "pooled, human-rated"
    if hum.any():
        df.loc[hum] = _adjust(df[hum].copy(), alpha)
    return df


def _adjust(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Family-adjusted p, simultaneous interval, MDE and verdict of the human-rated rows (see :func:`pooled_claims`)."""
    from ..analysis.stats import mde_se, t_quantile, tost, tost_margin_80
    fam = df["family"].to_numpy()
    in_family = np.isin(fam, list(FAMILIES))
    counts = pd.Series(fam[in_family]).value_counts()
    for i in df.index:
        r = df.loc[i]
        m = int(counts[r.family]) if r.family in FAMILIES else 1
        a = alpha / m
        est, se, d = float(r.srcc_diff), float(r.se), float(r.df)
        if np.isfinite(r.margin):
            p = tost(est, se, d, float(r.margin))
            q = t_quantile(1 - a, d)
            mde = tost_margin_80(se, d, a)
        else:
            p = float(r.p)
            q = t_quantile(1 - a / 2, d)
            mde = mde_se(se, d, a)
        p_adj = min(1.0, m * p)
        lo, hi = est - q * se, est + q * se
        if r.family == "descriptive":
            verdict = "descriptive (no verdict)"
        elif np.isfinite(r.margin):
            verdict = (f"equivalent within +-{r.margin:g} (significant)" if p_adj < alpha
                       else "equivalence not shown")
        else:
            verdict = _verdict(est, p_adj, alpha)
        df.loc[i, ["p", "m", "p_adj", "adj_low", "adj_high", "level", "mde", "verdict"]] = [
            p, m, p_adj, max(lo, -2.0), min(hi, 2.0), 1 - (2 * a if np.isfinite(r.margin) else a), mde, verdict]
    return df


def _pooled_row(name: str, r, sign: float, alpha: float, prefix: str = "", margin: float | None = None,
                table: str = "") -> dict:
    """One pooled table row as a claim row in its claimed direction (``sign``): human-rated pools carry their
    own test's p (adjusted over their family afterwards, :func:`_adjust`); synthetic rows their table's Holm p
    and a verdict marked as not about human opinions."""
    below = bool(getattr(r, "p_below", False))
    p = f"{'difference ' if margin is not None else ''}p {p_text(r.p, below, '<')}"
    lo, hi = (getattr(r, "ci_low", np.nan), getattr(r, "ci_high", np.nan))
    ci = (lo, hi) if sign > 0 else (-hi, -lo)
    test = "difference" if margin is None else f"equivalence (TOST, margin +-{margin:g})"
    row = dict(claim=name, family=family_of(name), table=table, test=test, srcc_diff=sign * r.estimate,
               se=float(getattr(r, "se", np.nan)), df=float(getattr(r, "df", np.nan)), ci_low=ci[0], ci_high=ci[1],
               p=r.p, p_below=below, margin=np.nan if margin is None else float(margin), p_holm=r.p_holm,
               m=np.nan, p_adj=np.nan, adj_low=np.nan, adj_high=np.nan, level=np.nan, mde=np.nan)
    if str(r.scope) == "human-rated":
        i2 = "" if not np.isfinite(r.i2) else f", I2 {r.i2:.0%}"
        where = f"{prefix}{r.datasets}: {int(r.cells)} cell(s), {int(r.k)} dataset(s){i2}; {r.test}; {p}"
        return {**row, "scope": "pooled, human-rated", "where": where, "p_holm": np.nan, "verdict": ""}
    where = f"{prefix}{r.datasets}: {int(r.cells)} cell(s); {r.test}; {p}"
    return {**row, "scope": "synthetic set (SSIM proxy, not human opinions)", "where": where,
            "verdict": _verdict(sign * r.estimate, r.p_holm, alpha) + " (synthetic proxy)"}


def adjusted_name(family: str, m: float) -> str:
    """What an adjusted p is, named by its family: "P1 family (m 7) p", or "unadjusted p" outside any family."""
    return f"{family} family (m {int(m)}) p" if family in FAMILIES else "unadjusted p"


def summary(claims_df: pd.DataFrame) -> str:
    """One line per claim (Markdown): in how many cells it holds, is reversed, or is not significant, then its
    pooled verdict on human-rated data (its family-adjusted p) and its synthetic-set rows. Every pooled row appears,
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
            parts.append(f"pooled (human-rated; {r.where.split(';')[0]}) {r.srcc_diff:+.3f}, p {r.p:.3g}, "
                         f"{adjusted_name(r.family, r.m)} {r.p_adj:.3g}: {r.verdict}")
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
