"""How tables read in the rendered notebooks: 3 decimals, p-values to 3 significant digits, significance
marked, long test tables folded under their summary, and each comparison table's verdict in words."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["formatted", "show", "folded", "verdict", "pooled_section", "tables_section", "figures_section", "figure", "KEY_TEST_COLUMNS",
           "POOLED_VIEW"]

KEY_TEST_COLUMNS = ("dataset", "backbone", "a", "b", "diff", "srcc_diff", "ci_low", "ci_high", "p", "p_holm",
                    "m_family", "mde80", "mde80_beyond_range", "significant")


# what a reader needs of a pooled table (the CSV keeps the diagnostics: se, df, tau2, sd_diff, part sizes)
POOLED_VIEW = ("a", "pair", "claim", "scope", "k", "cells", "estimate", "ci_low", "ci_high", "p", "p_holm", "i2",
               "mde80", "mde80_beyond_range", "splits_80", "significant")


# counts (integers stored as floats where a column has NaNs): printed as integers
COUNTS = ("k", "cells", "n", "n_splits", "n_train", "n_val", "n_test", "n_boot", "n_images", "images", "m_family", "m",
          "df", "splits_80", "epoch", "epochs", "seed")


def _fmt_value(col: str, v):
    if isinstance(v, (bool, np.bool_)):
        return "✱ yes" if (col == "significant" and v) else ("no" if col == "significant" else str(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "-" if col in ("i2", "tau2") else ""        # k = 1: no heterogeneity to speak of
        if col == "splits_80" and np.isinf(v):
            return "never (n_test/n_train floor)"
        if col in COUNTS and float(v).is_integer():
            return str(int(v))
        if col == "p" or col.startswith("p_") or col.startswith("min_p") or col == "holm_first_threshold":
            return f"{v:.3g}"
        return f"{v:.3f}"
    return v


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every cell formatted for reading (strings)."""
    out = df.copy()
    if isinstance(out.index, pd.MultiIndex) or out.index.name:
        out = out.reset_index()
    below = out["p_below"].fillna(False).astype(bool).to_numpy() if "p_below" in out else np.zeros(len(out), bool)
    beyond = (out["mde80_beyond_range"].fillna(False).astype(bool).to_numpy() if "mde80_beyond_range" in out
              else np.zeros(len(out), bool))
    for c in out.columns:
        vals = [_fmt_value(str(c), v) for v in out[c]]
        if c == "p":        # a bootstrap p with no replicate on one side: below the method's resolution 1/n_boot
            vals = [f"< {v}" if b and v else v for v, b in zip(vals, below)]
        if c == "p_holm":      # an adjusted bound is a bound (Holm of p < 1/n_boot)
            vals = [f"<= {v}" if b and v and v != "1" else v for v, b in zip(vals, below)]
        if c == "mde80":    # an MDE beyond 2, the largest SRCC difference (analysis.compare: NaN + flag)
            vals = ["not detectable with these splits" if b else v for v, b in zip(vals, beyond)]
        out[c] = vals
    out = out.drop(columns=[c for c in ("p_below", "mde80_beyond_range") if c in out])
    for lo_c, hi_c, name in (("ci_low", "ci_high", "95% CI"), ("adj_low", "adj_high", "adjusted CI")):
        if lo_c in out and hi_c in out:     # one column per concept: the interval
            ci = [f"[{lo}, {hi}]" if lo != "" and hi != "" else "" for lo, hi in zip(out[lo_c], out[hi_c])]
            out.insert(list(out.columns).index(lo_c), name, ci)
            out = out.drop(columns=[lo_c, hi_c])
    out.columns.name = None
    return out


def _html(df: pd.DataFrame) -> str:
    """The formatted table as HTML with its text columns left-aligned and numbers right-aligned (nbconvert's style
    right-aligns every cell). The table's id is a hash of its content, so a rerun renders the same bytes."""
    import hashlib
    flat = df.reset_index() if (isinstance(df.index, pd.MultiIndex) or df.index.name) else df
    is_text = {c for c in flat.columns
               if not pd.api.types.is_numeric_dtype(flat[c]) or pd.api.types.is_bool_dtype(flat[c])}
    shown = formatted(df)
    text = [i + 1 for i, c in enumerate(shown.columns) if c in is_text]
    body = shown.to_html(index=False, escape=True)
    tid = "nriqa-" + hashlib.sha1(body.encode()).hexdigest()[:10]
    body = body.replace('<table border="1" class="dataframe">', f'<table border="1" class="dataframe" id="{tid}">', 1)
    rules = "".join(f"#{tid} td:nth-child({i}),#{tid} th:nth-child({i}){{text-align:left}}" for i in text)
    if "95% CI" in shown:           # an interval reads on one line
        i = list(shown.columns).index("95% CI") + 1
        rules += f"#{tid} td:nth-child({i}){{white-space:nowrap}}"
    return (f"<style>{rules}</style>" if rules else "") + body


def show(df: pd.DataFrame, caption: str = ""):
    """The table as HTML (IPython display object), formatted, with its caption above."""
    from IPython.display import HTML
    cap = f"<p><em>{caption}</em></p>" if caption else ""
    return HTML(cap + _html(df))


def folded(df: pd.DataFrame, summary: str, columns=None):
    """A long table folded under a one-line summary (HTML <details>)."""
    from IPython.display import HTML
    d = df[[c for c in (columns or df.columns) if c in df.columns]] if len(df) else df
    return HTML(f"<details><summary>{summary}</summary>" + _html(d) + "</details>")


def _p(p: float) -> str:
    """A p-value for reading; 0 from a bootstrap means below its resolution."""
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def verdict(tests: pd.DataFrame, alpha: float, what: str = "comparisons") -> str:
    """The table's verdict in words (Markdown): which differences are significant after Holm, their sizes,
    and the smallest difference the family could have detected."""
    if tests is None or not len(tests):
        return f"**Verdict:** no {what} to test with the current params."
    diff = "diff" if "diff" in tests else "srcc_diff"
    sig = tests[tests["significant"].astype(bool)]
    where = (lambda r: "/".join(str(r[c]) for c in ("dataset", "backbone") if c in r and pd.notna(r[c])))
    parts = [f"{r['a']} vs {r['b']} on {where(r)}: {r[diff]:+.3f} (Holm p {_p(r['p_holm'])})"
             for _, r in sig.sort_values(diff, key=abs, ascending=False, kind="stable").iterrows()]
    head = f"**Verdict:** {len(sig)} of {len(tests)} {what} are significant after Holm (alpha {alpha:g})"
    body = (": " + "; ".join(parts[:8]) + ("; ..." if len(parts) > 8 else "") + ".") if parts else "."
    mde = tests["mde80"].replace([np.inf, -np.inf], np.nan).dropna() if "mde80" in tests else pd.Series(dtype=float)
    tail = (f" With these splits a true SRCC difference of about {mde.median():.3f} (median over rows) was needed "
            f"for 80% power, so smaller differences may exist undetected.") if len(mde) else ""
    return head + body + tail


POOLED_TEXT = (
    "**Pooled verdicts**, one claim per row: the cells of one dataset (backbones, heads) share its images and splits, "
    "so they are combined into one test per dataset first (the Nadeau-Bengio t on their mean per-split difference, "
    "or the mean of their bootstrap replicates); human-rated datasets are then pooled (mean over datasets, one-sample "
    "t on k - 1 df; k = 1: the dataset's own test), and the synthetic set (an SSIM proxy, not human opinions) keeps "
    "rows of its own. p is Holm-adjusted over the table's human-rated rows; `mde80` / `splits_80`: the difference "
    "detectable with 80% power / the splits that would detect the estimate, at the level its test faces.")


def pooled_section(pooled: pd.DataFrame | None, forest, caption: str = "Pooled verdicts (diagnostics in the CSV)",
                   explain: bool = True) -> None:
    """A table's pooled verdicts in a notebook: what pooling means, the table (POOLED_VIEW's columns), its forest
    plot and power curve (``forest``: the forest PNG; the power PNG beside it), where they exist."""
    from pathlib import Path

    from IPython.display import Markdown, display
    if explain:
        display(Markdown(POOLED_TEXT))
    if pooled is not None and len(pooled):
        display(show(pooled[[c for c in POOLED_VIEW if c in pooled]], caption))
    else:
        display(Markdown("No comparison to pool."))
    forest = Path(forest)
    for fig in (forest, forest.with_name(forest.name.replace("forest", "power"))):
        figure(fig)


def figure(path, heading: str | None = None):
    """One figure in a notebook with a heading (``heading``, or the file's name) and a caption: the figure in words,
    the PNG's Description (written by ``reporting.plots.save``); an absent file shows nothing."""
    from pathlib import Path
    from IPython.display import Image, Markdown, display
    from .plots import png_text
    f = Path(path)
    if not f.is_file():
        return
    caption = png_text(f).get("Description", "")
    display(Markdown(f"#### {heading or f.stem.replace('_', ' ')}\n\n*{caption}*"), Image(f))


def figures_section(results, figures) -> None:
    """Each figure under ``results`` (paths relative to it) with a heading (its name and the folder of the table or
    stage that drew it) and its caption (:func:`figure`); an absent one is skipped."""
    from pathlib import Path
    for rel in figures:
        figure(Path(results) / rel, f"{Path(rel).stem.replace('_', ' ')} ({rel.split('/')[0]})")


def tables_section(results, tables) -> None:
    """The report's Tables section, rendered as in the table notebooks: each table under its caption (the first
    paragraph of its .md), the tests folded to KEY_TEST_COLUMNS and the pooled rows to POOLED_VIEW (every column
    stays in the CSV). ``tables``: paths under ``results`` without extension; absent ones are skipped."""
    from pathlib import Path

    from IPython.display import Markdown, display
    for rel in tables:
        csv = Path(results) / f"{rel}.csv"
        if not csv.is_file():
            continue
        md = csv.with_suffix(".md")
        first = md.read_text(encoding="utf-8").split("\n\n", 1)[0] if md.is_file() else ""
        caption = first if first and not first.startswith("|") else Path(rel).name
        if csv.stat().st_size <= 1:         # a table with no rows is written as an empty file
            display(Markdown(f"*{caption}*: no rows with these params."))
            continue
        df = pd.read_csv(csv)
        if rel.endswith("_tests"):
            display(folded(df, caption, KEY_TEST_COLUMNS))
        elif rel.endswith("_pooled"):
            display(folded(df, caption, POOLED_VIEW))
        else:
            display(show(df, caption))
