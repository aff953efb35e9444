"""The one-page report: the four tables, key figures, and a generated verdict on each of the papers' claims
(reads the tables' CSV files only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ..backbones import REGISTRY, is_control
from ..io import atomic_write_text
from .export import RANDOM_WEIGHTS

PARAMS = ("stats.alpha", "features.pretrained")
__all__ = ["PARAMS", "claims", "summary", "gather_tables", "write_report", "FIGURES", "RANDOM_WEIGHTS"]

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
        if "CLIP-IQA" in str(r.b):
            name = f"P2: {str(r.a).split(': ', 1)[1]} beats CLIP-IQA"
        else:
            name = "ours: the magnitude cue of a pretrained backbone beats that of a random one"
        out.append((name, f"{r.dataset}: {r.a} vs {r.b}", r.srcc_diff, r.p_holm,
                    _verdict(r.srcc_diff, r.p_holm, alpha)))
    t5 = _read(results, "t5/tables/t5_tests.csv")
    for r in t5.itertuples() if "a" in t5 else []:
        out.append((f"ours: input policy {r.a} beats squash", f"{r.dataset}/{r.backbone}/{r.head}", r.diff,
                    r.p_holm, _verdict(r.diff, r.p_holm, alpha)))
    t6 = _read(results, "t6/tables/t6_tests.csv")
    for r in t6.itertuples() if "a" in t6 else []:
        out.append((f"P1: {r.a} fine-tuning beats a frozen backbone", f"{r.dataset}/{r.backbone}", r.diff, r.p_holm,
                    _verdict(r.diff, r.p_holm, alpha)))
    t4n = _read(results, "t4/tables/t4_notes.csv")
    for r in t4n.itertuples():
        out.append(("P2: MA-CLIP beats CLIP-IQA", f"{r.dataset}/{r.model}", np.nan, np.nan,
                    "not testable here (CLIP weights absent)"))
    out += _pooled_claims(results, alpha)
    df = pd.DataFrame(out, columns=["claim", "where", "srcc_diff", "p_holm", "verdict"])
    return df.round({"srcc_diff": 4, "p_holm": 4})


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
           ("t6/tables/t6_pooled.csv", "a", {"lora": "P1: lora fine-tuning beats a frozen backbone",
                                             "full": "P1: full fine-tuning beats a frozen backbone"}))


def _pooled_claims(results: Path, alpha: float) -> list[tuple]:
    """One pooled row per claim (random effects over its cells; Holm over the pooled rows of each table)."""
    out = []
    for rel, col, names in _POOLED:
        t = _read(results, rel)
        for r in t.itertuples() if len(t) and col in t else []:
            key = getattr(r, col)
            if names and key not in names:       # a head no claim is about (tanh vs B, ...): its table has it
                continue
            name = names.get(key, f"ours: input policy {key} beats squash" if rel.startswith("t5/") else str(key))
            out.append((name, f"pooled over {int(r.k)} cell(s), random effects (I2 {r.i2:.0%})", r.estimate,
                        r.p_holm, _verdict(r.estimate, r.p_holm, alpha)))
    t1 = _read(results, "t1/tables/t1_pooled.csv")
    for r in t1.itertuples() if len(t1) else []:
        a, b = str(r.pair).split(" - ", 1)
        a_ctrl, b_ctrl = (x in REGISTRY and is_control(x) for x in (a, b))
        if a_ctrl != b_ctrl:
            sign = -1 if a_ctrl else 1
            out.append(("ours: pretrained features beat a random-init control",
                        f"{b if a_ctrl else a}: pooled over {int(r.k)} dataset(s) (I2 {r.i2:.0%})", sign * r.estimate,
                        r.p_holm, _verdict(sign * r.estimate, r.p_holm, alpha)))
    return out


def summary(claims_df: pd.DataFrame) -> str:
    """One line per claim (Markdown): in how many cells it holds, is reversed, or is not significant."""
    if not len(claims_df):
        return "No claim could be tested with the current params."
    lines = []
    for claim, g in claims_df.groupby("claim", sort=False):
        pool = g[g["where"].str.contains("pooled")]
        g = g[~g["where"].str.contains("pooled")]
        if not len(g):
            continue
        v = g["verdict"].value_counts()
        n = len(g)
        parts = [f"{v.get(k, 0)} {label}" for k, label in (("holds (significant)", "hold"),
                 ("reversed (significant)", "reversed"), ("not significant", "not significant"))
                 if v.get(k, 0)]
        other = n - sum(v.get(k, 0) for k in ("holds (significant)", "reversed (significant)", "not significant"))
        if other:
            parts.append(f"{other} not testable here")
        pooled_txt = "; ".join(f"pooled {r.srcc_diff:+.3f}, {r.verdict}" for r in pool.itertuples())
        lines.append(f"- **{claim}**: {', '.join(parts)} (of {n} cell{'s' if n > 1 else ''})"
                     + (f"; {pooled_txt}" if pooled_txt else ""))
    return "\n".join(lines)


def gather_tables(results: str | Path, ext: str = "md") -> str:
    """The four main tables and their tests, in order, as Markdown (``ext="md"``) or LaTeX (``"tex"``)."""
    results = Path(results)
    parts = []
    for rel in ("t1/tables/t1_backbones", "t1/tables/t1_tests", "t2/tables/t2_activations",
                "t2/tables/t2_tests", "t2/tables/t2_cross", "t3/tables/t3_selection", "t3/tables/t3_tests",
                "t4/tables/t4_zeroshot", "t4/tables/t4_tests", "t4/tables/t4_notes", "t5/tables/t5_resolution",
                "t5/tables/t5_tests", "t5/tables/t5_cost", "t6/tables/t6_regimes",
                "t6/tables/t6_tests", "t1/tables/t1_pooled", "t2/tables/t2_pooled", "t2/tables/t2_cross_pooled",
                "t3/tables/t3_pooled", "t4/tables/t4_pooled", "t5/tables/t5_pooled",
                "t6/tables/t6_pooled"):
        f = results / f"{rel}.{ext}"
        if f.is_file():
            parts.append(f.read_text())
    return "\n\n".join(parts)


def write_report(out_dir: str | Path, tables_md: str, claims_df: pd.DataFrame, tables_tex: str = "",
                 banner: str = "") -> Path:
    """report.md (claims + tables), claims.tex and tables.tex (every table's LaTeX, in order); ``banner`` (e.g.
    the random-weights label of the smoke profile) heads the report."""
    out = Path(out_dir)
    text = ("# nriqa report\n\n" + (f"**{banner}**\n\n" if banner else "") + "## Claims on the data at hand\n\n"
            + claims_df.to_markdown(index=False)
            + "\n\n## Tables\n\n" + tables_md + "\n")
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "claims.tex", claims_df.to_latex(index=False, escape=True))
    atomic_write_text(out / "tables.tex", tables_tex)
    return out / "report.md"
