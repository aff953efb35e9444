"""The one-page report: the six tables, key figures, and a generated verdict on each of the papers' claims
(reads the tables' CSV files only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ..backbones import REGISTRY, is_control
from ..core.io import atomic_write_text
from ..core.stats import holm
from .export import RANDOM_WEIGHTS

PARAMS = ("stats.alpha", "features.pretrained")
__all__ = ["PARAMS", "claims", "summary", "gather_tables", "write_report", "FIGURES", "RANDOM_WEIGHTS",
           "TABLES_IN_ORDER"]

# the report's figures, in order: the tables' own figures and the figures stage's
FIGURES = ("t1/figures/t1_srcc.png", "t2/figures/t2_forest.png", "t2/figures/t2_cross_forest.png",
           "t3/figures/t3_forest.png", "t3/figures/t3_shares.png", "t4/figures/t4_srcc.png", "t4/figures/t4_forest.png",
           "t5/figures/t5_forest.png", "t6/figures/t6_forest.png",
           "figures/pred_vs_mos.png", "figures/tsne_hidden.png", "figures/gradcam.png")


def _read(results: Path, rel: str) -> pd.DataFrame:
    f = results / rel
    return pd.read_csv(f) if f.is_file() and f.stat().st_size > 1 else pd.DataFrame()


def _verdict(diff: float, p_adj: float, alpha: float) -> str:
    if p_adj < alpha:
        return "holds (significant)" if diff > 0 else "reversed (significant)"
    return "not significant"


def claims(results: str | Path, alpha: float = 0.05) -> pd.DataFrame:
    """Each claim tested on the data at hand: where, estimated difference (SRCC), Holm-adjusted p, verdict."""
    results = Path(results)
    out = []
    t1 = _read(results, "t1/tables/t1_tests.csv")
    for r in t1.itertuples():
        a_ctrl, b_ctrl = (str(x) in REGISTRY and is_control(str(x)) for x in (r.a, r.b))
        if a_ctrl != b_ctrl:   # pretrained vs random control, oriented pretrained - control
            sign = -1 if a_ctrl else 1
            real = r.b if a_ctrl else r.a
            out.append(("ours: pretrained features beat a random-init control", f"{r.dataset}/{real}",
                        sign * r.diff, r.p_holm, _verdict(sign * r.diff, r.p_holm, alpha)))
    t2 = _read(results, "t2/tables/t2_tests.csv")
    for name, head in (("P1: sigmoid beats ReLU", "sigmoid"), ("P1: B_Sig beats B (ReLU)", "B_Sig"), ("GELU beats ReLU (P1 found it does not)", "gelu")):
        for r in t2[t2["a"] == head].itertuples() if len(t2) else []:
            out.append((name, f"{r.dataset}/{r.backbone}", r.diff, r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t2c = _read(results, "t2/tables/t2_cross_tests.csv")
    for name, head in (("P1: sigmoid generalises better than ReLU (cross-dataset)", "sigmoid"),
                       ("P1: B_Sig generalises better than B (cross-dataset)", "B_Sig"),
                       ("P1: B_Gated generalises better than B (cross-dataset)", "B_Gated")):
        for r in t2c[t2c["a"] == head].itertuples() if len(t2c) else []:
            out.append((name, f"{r.dataset}/{r.backbone}", r.diff, r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t3 = _read(results, "t3/tables/t3_tests.csv")
    for r in t3.itertuples():
        name = "P1: B_Gated beats the best fixed activation" if r.a == "B_Gated" else \
            "ours: K-way selection beats the best fixed activation"
        out.append((name, f"{r.dataset}/{r.backbone}", r.diff, r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t4 = _read(results, "t4/tables/t4_tests.csv")
    for r in t4.itertuples():
        score = str(r.a).split(': ', 1)[1]
        name = f"P2: {score} beats CLIP-IQA" if "CLIP-IQA" in str(r.b) else _cue_claim(score)
        out.append((name, f"{r.dataset}: {r.a} vs {r.b}", r.srcc_diff, r.p_holm,
                    _verdict(r.srcc_diff, r.p_holm, alpha)))
    t5 = _read(results, "t5/tables/t5_tests.csv")
    for r in t5.itertuples() if "a" in t5 else []:
        out.append((f"ours: input policy {r.a} beats squash", f"{r.dataset}/{r.backbone}/{r.head}", r.diff,
                    r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t6 = _read(results, "t6/tables/t6_tests.csv")
    for r in t6.itertuples() if "a" in t6 else []:
        where = f"{r.dataset}/{r.backbone}" + (f"/{r.head}" if "head" in t6 else "")
        out.append((_t6_claim(r.a), where, r.diff, r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t4n = _read(results, "t4/tables/t4_notes.csv")
    for r in t4n.itertuples():
        out.append(("P2: MA-CLIP beats CLIP-IQA", f"{r.dataset}/{r.model}", np.nan, np.nan,
                    "not testable here (CLIP weights absent)"))
    df = pd.DataFrame(out, columns=["claim", "where", "srcc_diff", "p_holm", "verdict"]).assign(
        scope="cell", p_study=np.nan, p_below=False)
    pool = _pooled_claims(results, alpha)
    if len(pool):
        df = pd.concat([df, pool], ignore_index=True)
    df["p_below"] = df["p_below"].astype(bool)
    out = df[["claim", "scope", "where", "srcc_diff", "p_holm", "p_study", "p_below", "verdict"]].round({"srcc_diff": 4})
    return out.assign(p_holm=out["p_holm"].map(round_p), p_study=out["p_study"].map(round_p))


def round_p(p: float, digits: int = 4) -> float:
    """A p-value kept to ``digits`` significant digits (4 decimals would print a p of 3e-5 as 0)."""
    return float(f"{p:.{digits - 1}e}") if np.isfinite(p) else p


def _default_claim(rel: str, key: str) -> str:
    """The claim name of a pooled row that no paper states (every pooled row reaches the report)."""
    if rel.startswith("t4/"):
        return _t4_claim(key)
    if rel.startswith("t5/"):
        return f"ours: input policy {key} beats squash"
    if rel.startswith("t2/tables/t2_cross"):
        return f"ours: {key} generalises better than the reference head (cross-dataset)"
    if rel.startswith("t2/"):
        return f"ours: {key} beats the reference head"
    if rel.startswith("t3/"):
        return f"ours: {key} beats the best fixed activation"
    if rel.startswith("t6/"):
        return _t6_claim(key)
    return key


# T6's regimes as claims: P1's published fine-tuning is (most likely) p1_frozen, its released code p1; lora and full
# are ours
T6_CLAIMS = {"p1_frozen": "P1 (as published): LoRA adapters on a frozen backbone beat a frozen backbone + head",
             "p1": "P1's released code: LoRA adapters + full backbone beat a frozen backbone",
             "lora": "ours: LoRA adapters alone beat a frozen backbone",
             "full": "ours: full fine-tuning beats a frozen backbone"}


def _t6_claim(regime: str) -> str:
    return T6_CLAIMS.get(regime, f"{regime} fine-tuning beats a frozen backbone")


def _cue_claim(score: str) -> str:
    return f"ours: the magnitude cue ({score}) of a pretrained backbone beats that of a random one"


def _t4_claim(key: str) -> str:
    """T4's pooled claim names (one per score, analysis.t4) -> the per-cell rows' claim names."""
    if key.startswith("magnitude cue (") and "): pretrained vs" in key:
        return _cue_claim(key[len("magnitude cue ("):key.index("): pretrained vs")])
    if key.startswith("P2: ") and key.endswith(" vs CLIP-IQA"):
        return f"{key[:-len(' vs CLIP-IQA')]} beats CLIP-IQA"
    return key


# pooled tables: (file, claim column, {level: claim name}); a level absent here keeps its own name
_POOLED = (("t2/tables/t2_pooled.csv", "a", {"sigmoid": "P1: sigmoid beats ReLU", "B_Sig": "P1: B_Sig beats B (ReLU)",
                                              "gelu": "GELU beats ReLU (P1 found it does not)"}),
           ("t2/tables/t2_cross_pooled.csv", "a",
            {"sigmoid": "P1: sigmoid generalises better than ReLU (cross-dataset)",
             "B_Sig": "P1: B_Sig generalises better than B (cross-dataset)",
             "B_Gated": "P1: B_Gated generalises better than B (cross-dataset)"}),
           ("t3/tables/t3_pooled.csv", "a", {"B_Gated": "P1: B_Gated beats the best fixed activation",
                                             "kway": "ours: K-way selection beats the best fixed activation"}),
           ("t4/tables/t4_pooled.csv", "claim", {}),
           ("t5/tables/t5_pooled.csv", "a", {}),
           ("t6/tables/t6_pooled.csv", "a", T6_CLAIMS))


def _fmt_p(p: float, below: bool) -> str:
    return f"< {p:.3g}" if below else f"{p:.3g}"


def _pooled_claims(results: Path, alpha: float) -> pd.DataFrame:
    """Every pooled row of every table (human-rated pools and the synthetic set's own rows), as claims. The
    human-rated rows are one family across the whole study: ``p_study`` is Holm over all of them, and their
    verdict uses it; the synthetic rows keep their table's Holm p and say they are not human opinions."""
    out = []
    for rel, col, names in _POOLED:
        t = _read(results, rel)
        for r in t.itertuples() if len(t) and col in t else []:
            key = str(getattr(r, col))
            out.append(_pooled_row(names.get(key) or _default_claim(rel, key), r, 1.0, alpha))
    t1 = _read(results, "t1/tables/t1_pooled.csv")
    for r in t1.itertuples() if len(t1) else []:
        a, b = str(r.pair).split(" - ", 1)
        a_ctrl, b_ctrl = (x in REGISTRY and is_control(x) for x in (a, b))
        if a_ctrl != b_ctrl:
            out.append(_pooled_row("ours: pretrained features beat a random-init control", r, -1.0 if a_ctrl else 1.0,
                                   alpha, f"{b if a_ctrl else a}: "))
        else:                                  # two pretrained backbones: P1's ranking, one pair at a time
            out.append(_pooled_row(f"P1: backbones differ ({a} vs {b})", r, 1.0, alpha))
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
    p = f"p {_fmt_p(r.p, below)}"
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


# every table the report shows, in order (under results/, without the extension)
TABLES_IN_ORDER = (
    "t1/tables/t1_backbones", "t1/tables/t1_tests", "t2/tables/t2_activations", "t2/tables/t2_tests",
    "t2/tables/t2_cross", "t3/tables/t3_selection", "t3/tables/t3_tests", "t4/tables/t4_zeroshot",
    "t4/tables/t4_tests", "t4/tables/t4_notes", "t5/tables/t5_resolution", "t5/tables/t5_tests", "t5/tables/t5_cost",
    "t6/tables/t6_regimes", "t6/tables/t6_tests", "t1/tables/t1_pooled", "t2/tables/t2_pooled",
    "t2/tables/t2_cross_pooled", "t3/tables/t3_pooled", "t4/tables/t4_pooled", "t5/tables/t5_pooled",
    "t6/tables/t6_pooled")


def gather_tables(results: str | Path, ext: str = "md") -> str:
    """Every table of TABLES_IN_ORDER, as Markdown (``ext="md"``) or LaTeX (``"tex"``)."""
    results = Path(results)
    parts = []
    for rel in TABLES_IN_ORDER:
        f = results / f"{rel}.{ext}"
        if f.is_file():
            parts.append(f.read_text())
    return "\n\n".join(parts)


def write_report(out_dir: str | Path, tables_md: str, claims_df: pd.DataFrame, tables_tex: str = "",
                 banner: str = "") -> Path:
    """report.md (claims + tables), claims.tex and tables.tex (every table's LaTeX, in order); ``banner`` (e.g.
    the random-weights label of the smoke profile) heads the report."""
    from .display import formatted
    out = Path(out_dir)
    shown = formatted(claims_df)       # as the notebooks print it: p to 3 digits, a bound as "<= p", no "nan"
    text = ("# nriqa report\n\n" + (f"**{banner}**\n\n" if banner else "") + "## Claims on the data at hand\n\n"
            + shown.to_markdown(index=False)
            + "\n\n## Tables\n\n" + tables_md + "\n")
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "claims.tex", shown.to_latex(index=False, escape=True))
    atomic_write_text(out / "tables.tex", tables_tex)
    return out / "report.md"
