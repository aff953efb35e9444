"""Published vs reproduced (issue 25 item 9): P1's Table 5 (SRCC/PLCC per head and dataset, the cross-dataset pair),
P2's SRCCs (CLIP-IQA -> MA-CLIP per dataset) and pyiqa's CLIP-IQA on CLIVE, each beside the study's number for the
same cell under the profile that ran, its 95% CI and whether the published value lies inside it. A cell the run
could not produce says why. The published values and their sources live in ``references/published.yaml``; the
study's numbers are read from the tables' CSVs (T6's last-epoch summary: P1's code writes the last epoch; T4's
zero-shot table); nothing here computes a statistic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..analysis.compare import CORRELATION_RANGE
from ..core.io import atomic_write_text
from .claims import read_table

__all__ = ["PUBLISHED", "load_published", "compare_published", "published_markdown", "write_published"]

PUBLISHED = "references/published.yaml"
T6_SUMMARY = "t6/tables/t6_summary_last_epoch.csv"
T4_TABLE = "t4/tables/t4_zeroshot.csv"
T4_SCORE = {"CLIP-IQA": "CLIP-IQA", "MA-CLIP": "MA-CLIP (P2)"}     # P2's names -> T4's score labels
COLUMNS = ["work", "source", "method", "dataset", "metric", "published", "study", "ci_low", "ci_high", "inside",
           "study_cell", "note"]


def load_published(path: str | Path = PUBLISHED) -> tuple[dict, pd.DataFrame]:
    """(sources by key, one row per published number: source, method, dataset, metric, published)."""
    doc = yaml.safe_load(Path(path).read_text())
    rows = []
    for i, c in enumerate(doc["cells"]):
        if c.get("source") not in doc["sources"]:
            raise ValueError(f"{path}: cell {i + 1} names source {c.get('source')!r}, which `sources` does not define")
        for m in ("srcc", "plcc"):
            if m in c:
                rows.append({"source": c["source"], "method": str(c["method"]), "dataset": str(c["dataset"]),
                             "metric": m, "published": float(c[m])})
    return doc["sources"], pd.DataFrame(rows)


P1_TABLE5_GPU_H = 101       # SigLIP2 so400m alone, P1's regime, measured step times (docs/paper_profile.md)
SHIPPED = ("clive",)        # datasets whose images are here (../shared/datasets); the others' images users bring


def _images(dataset: str) -> list[str]:
    """What a cell on ``dataset`` needs besides weights: its images, unless they ship with the study."""
    return [] if dataset in SHIPPED else [f"the {dataset} images (data.roots.{dataset}, data.datasets)"]


def _p1(cell, src: dict, t6: pd.DataFrame) -> dict:
    if cell.dataset == "flive":
        return {"note": "FLIVE is not in the study (no labels under ../shared/labels)"}
    s = src["study"]
    rows = t6[(t6["regime"] == s["regime"]) & t6["backbone"].str.startswith(s["backbone"])] if len(t6) else t6
    if not len(rows):
        return {"note": "needs " + "; ".join([
            "SigLIP2 so400m-patch16-512 weights (a local file in features.weights, or the HF cache)",
            *_images(cell.dataset),
            f"P1's fine-tuning (finetune.regimes: [{s['regime']}], finetune.backbones: [{s['backbone']}_hf]): "
            f"`dvc exp run` with params-paper.yaml's finetune section: ~{P1_TABLE5_GPU_H} GPU-h on one GPU for "
            "Table 5 at the `p1` regime's measured step times (docs/paper_profile.md)"])}
    hit = rows[(rows["dataset"] == cell.dataset) & (rows["head"] == cell.method) & (rows["metric"] == cell.metric)]
    if not len(hit):
        return {"note": f"needs the {cell.dataset} images (data.roots.{cell.dataset}) and head {cell.method} in "
                        "finetune.heads"}
    r = hit.sort_values("backbone", key=lambda b: ~b.str.endswith("_hf"), kind="stable").iloc[0]   # P1's loader first
    one = r.get("n", 2) < 2          # one split: its "interval" is a point, no CI to compare with
    return {"study": r["mean"], "ci_low": np.nan if one else r["ci_low"], "ci_high": np.nan if one else r["ci_high"],
            "study_cell": f"T6 last epoch: {r['backbone']}, {s['regime']}, {r['head']}, mean of {int(r.get('n', 0))} split(s)"
                          + (" (one split: no interval)" if one else "")}


def _p2(cell, src: dict, t4: pd.DataFrame) -> dict:
    model = src["study"]["source"]
    rows = t4[t4["source"] == model] if len(t4) else t4
    if not len(rows):
        return {"note": "needs " + "; ".join([
            f"OpenAI CLIP RN50 weights (a local file in features.weights.{model}, or the HF cache)",
            *_images(cell.dataset), "then `dvc repro t4`: training-free, one forward pass per image, a CPU "
            "suffices"])}
    hit = rows[(rows["dataset"] == cell.dataset) & (rows["score"] == T4_SCORE[cell.method])]
    if not len(hit):
        return {"note": f"needs the {cell.dataset} images (data.roots.{cell.dataset})"}
    r = hit.iloc[0]
    return {"study": r["srcc"], "ci_low": r["srcc_ci_low"], "ci_high": r["srcc_ci_high"],
            "study_cell": f"T4: {model}, {r['score']}, whole dataset"}


def compare_published(results: str | Path, published: str | Path = PUBLISHED) -> pd.DataFrame:
    """Every published number beside the study's (CI clipped to [-1, 1]; ``inside``: the published value lies in
    the study's 95% CI), or a note saying why the run has no such number."""
    results = Path(results)
    sources, cells = load_published(published)
    t6, t4 = read_table(results, T6_SUMMARY), read_table(results, T4_TABLE)
    out = []
    for c in cells.itertuples():
        src = sources[c.source]
        if src.get("study") is None:
            got = {"note": {"p1_table5_cross": "not produced: P1 fine-tunes on the whole source set; the study's "
                                               "cross-dataset table (T2) trains heads on frozen features",
                            "pyiqa": "not computed: pyiqa's CLIP-IQA uses 3 prompt pairs; the study's CLIP-IQA is "
                                     "P2's 5-pair one (the P2 rows)"}.get(c.source, "not produced by the study")}
        elif src["study"]["table"] == "t6":
            got = _p1(c, src, t6)
        else:
            got = _p2(c, src, t4)
        out.append({"work": src["work"], "source": f"{src['table']} ({src['version']})", "method": c.method,
                    "dataset": c.dataset, "metric": c.metric, "published": c.published, "study": np.nan,
                    "ci_low": np.nan, "ci_high": np.nan, "study_cell": "", **got})
    df = pd.DataFrame(out)
    df[["ci_low", "ci_high"]] = df[["ci_low", "ci_high"]].astype(float).clip(*CORRELATION_RANGE)
    has = df["study"].notna() & df["ci_low"].notna()
    df["inside"] = np.where(has, np.where((df["ci_low"] <= df["published"]) & (df["published"] <= df["ci_high"]),
                                          "yes", "no"), "")
    df["note"] = df["note"].fillna("") if "note" in df else ""
    return df[COLUMNS]


def published_markdown(df: pd.DataFrame) -> str:
    """The table as Markdown, one row per published number."""
    def f(v) -> str:
        return "" if pd.isna(v) else f"{v:.3f}"
    n, filled = len(df), int(df["study"].notna().sum())
    cheap = df[(df["work"] == "P2") & df["study"].isna() & (df["dataset"].isin(SHIPPED))]
    head = (f"This run fills {filled} of the {n} published numbers."
            + (" That is expected offline: they come from backbones whose weights are not here (SigLIP2 so400m for "
               "P1, CLIP RN50 for P2) and, but for CLIVE, from datasets whose images are not here; each row says "
               "what it needs." if filled == 0 else " Each row it does not fill says what it needs." if filled < n
               else "")
            + (f" Cheapest to fill: P2's {len(cheap)} CLIVE cell(s), with CLIP RN50 weights on a CPU (training-free)."
               if len(cheap) else "") + "\n\n")
    lines = ["| work | source | method | dataset | metric | published | study | 95% CI | inside | study cell / why not |",
             "|:--|:--|:--|:--|:--|--:|--:|:--|:--|:--|"]
    for r in df.itertuples():
        ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" if pd.notna(r.ci_low) else ""
        lines.append(f"| {r.work} | {r.source} | {r.method} | {r.dataset} | {r.metric.upper()} | {f(r.published)} | "
                     f"{f(r.study)} | {ci} | {r.inside} | {r.study_cell or r.note} |")
    return head + "\n".join(lines) + "\n"


def write_published(df: pd.DataFrame, out_dir: str | Path) -> None:
    """published_vs_reproduced.csv and .md in ``out_dir`` (the report's folder)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "published_vs_reproduced.csv", df.to_csv(index=False, float_format="%.4f",
                                                                      lineterminator="\n"))
    atomic_write_text(out / "published_vs_reproduced.md", published_markdown(df))
