"""How tables read in the rendered notebooks: 3 decimals, p-values to 3 significant digits, significance
marked, long test tables folded under their summary, and each comparison table's verdict in words."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["formatted", "show", "folded", "verdict", "KEY_TEST_COLUMNS"]

KEY_TEST_COLUMNS = ("dataset", "backbone", "a", "b", "diff", "srcc_diff", "ci_low", "ci_high", "p", "p_holm",
                    "m_family", "mde80", "significant")


def _fmt_value(col: str, v):
    if isinstance(v, (bool, np.bool_)):
        return "✱ yes" if (col == "significant" and v) else ("no" if col == "significant" else str(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        if col == "p" or col.startswith("p_") or col.startswith("min_p") or col == "holm_first_threshold":
            return f"{v:.3g}"
        return f"{v:.3f}"
    return v


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every cell formatted for reading (strings)."""
    out = df.copy()
    if isinstance(out.index, pd.MultiIndex) or out.index.name:
        out = out.reset_index()
    for c in out.columns:
        out[c] = [_fmt_value(str(c), v) for v in out[c]]
    out.columns.name = None
    return out


def show(df: pd.DataFrame, caption: str = ""):
    """The table as HTML (IPython display object), formatted, with its caption above."""
    from IPython.display import HTML
    cap = f"<p><em>{caption}</em></p>" if caption else ""
    return HTML(cap + formatted(df).to_html(index=False, escape=True))


def folded(df: pd.DataFrame, summary: str, columns=None):
    """A long table folded under a one-line summary (HTML <details>)."""
    from IPython.display import HTML
    d = df[[c for c in (columns or df.columns) if c in df.columns]] if len(df) else df
    return HTML(f"<details><summary>{summary}</summary>" + formatted(d).to_html(index=False, escape=True)
                + "</details>")


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
             for _, r in sig.sort_values(diff, key=abs, ascending=False).iterrows()]
    head = f"**Verdict:** {len(sig)} of {len(tests)} {what} are significant after Holm (alpha {alpha:g})"
    body = (": " + "; ".join(parts[:8]) + ("; ..." if len(parts) > 8 else "") + ".") if parts else "."
    mde = tests["mde80"].replace([np.inf, -np.inf], np.nan).dropna() if "mde80" in tests else pd.Series(dtype=float)
    tail = (f" With these splits a true SRCC difference of about {mde.median():.3f} (median over rows) was needed "
            f"for 80% power, so smaller differences may exist undetected.") if len(mde) else ""
    return head + body + tail
