"""Seaborn figures used by the notebooks (each returns the Figure and can save it atomically)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..core.io import atomic_path  # noqa: E402

__all__ = ["save", "mos_histograms", "bars_with_ci", "epoch_curves", "selection_shares_plot", "pred_vs_mos", "embedding_plot", "gradcam_grid",
           "sample_grid", "per_view_plot", "forest", "power_plot", "claims_forest"]

sns.set_theme(context="notebook", style="whitegrid")


DPI = 110


def min_font_px(fig: plt.Figure, dpi: float = DPI) -> float:
    """The smallest font of the figure's visible text, in pixels of its PNG at ``dpi`` (points x dpi / 72)."""
    from matplotlib.text import Text
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return round(min(sizes) * dpi / 72, 2) if sizes else float("nan")


def describe(fig: plt.Figure) -> str:
    """A figure in words, for its alt text: its title, then each panel's title and axis labels."""
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    panels = []
    for ax in fig.axes:
        bits = [ax.get_title()] + [f"{k}: {v}" for k, v in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if v]
        text = "; ".join(b for b in bits if b)
        if text and text not in panels:
            panels.append(text)
    lead = sup or (panels.pop(0) if panels else "figure")
    n = len(panels)
    more = (f" ({n} panels: " if n > 1 else " (") + " | ".join(panels[:6]) + ")" if panels else ""
    return " ".join((lead + more).split())


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Save as PNG (fixed metadata, so the bytes depend on the content only). ``Description``: the figure in words
    (:func:`describe`; the site's alt text); ``nriqa-min-font-px``: the smallest font in the PNG's pixels, which
    scripts/site_check.py scales by how wide a page shows the image."""
    path = Path(path)
    fig.canvas.draw()            # tick labels exist only once drawn: measure the fonts after
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png",
                    metadata={"Software": None, "Description": describe(fig),
                              "nriqa-min-font-px": f"{min_font_px(fig)}"})
    return path


def png_text(png: bytes | str | Path) -> dict[str, str]:
    """The text chunks :func:`save` wrote into a PNG (a file, or its bytes): ``Description`` and
    ``nriqa-min-font-px``; the one reader of them in the library (scripts/site_check.py, run in Playwright's own
    environment without the study's, reads the latter itself)."""
    import io
    from PIL import Image
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else Path(png)) as im:
        return {k: v for k, v in im.info.items() if isinstance(v, str)}


def mos_histograms(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3), squeeze=False)
    for ax, (name, df) in zip(axes[0], tables.items()):
        sns.histplot(df["mos"], bins=30, ax=ax)
        ax.set(title=f"{name} (n={len(df)})", xlabel="MOS (normalised, higher is better)")
    fig.tight_layout()
    return fig


def sample_grid(paths: list[Path], titles: list[str], ncol: int = 5) -> plt.Figure:
    from PIL import Image
    nrow = (len(paths) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.6 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, p, t in zip(axes.ravel(), paths, titles):
        with Image.open(p) as im:
            im.thumbnail((256, 256))
            ax.imshow(np.asarray(im.convert("RGB")))
        ax.set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def bars_with_ci(summary: pd.DataFrame, x: str, hue: str | None, col: str | None = None,
                 metric: str = "srcc", ci_label: str = "95% CI") -> plt.Figure:
    """Means with their 95% CI as error bars (summary rows with mean, ci_low, ci_high); ``ci_label`` says
    which interval it is (over splits, Nadeau-Bengio corrected; two-level bootstrap; bootstrap over images)."""
    s = summary[summary["metric"] == metric]
    cols = sorted(s[col].unique()) if col else [None]
    ncol = min(3, len(cols))                 # wrap panels: at most 3 per row, each wide enough to read
    nrow = -(-len(cols) // ncol)
    width = max(4.0, 0.45 * s[x].nunique() * (s[hue].nunique() if hue else 1) + 1.5)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, 3.6 * nrow), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(cols):]:
        ax.axis("off")
    for ax, c in zip(axes.ravel(), cols):
        d = s if c is None else s[s[col] == c]
        hues = list(dict.fromkeys(d[hue])) if hue else [None]
        xs = list(dict.fromkeys(d[x]))
        width = 0.8 / len(hues)
        for i, h in enumerate(hues):
            dd = d if h is None else d[d[hue] == h]
            dd = dd.set_index(x).reindex(xs)
            pos = np.arange(len(xs)) + (i - (len(hues) - 1) / 2) * width
            err = np.vstack([dd["mean"] - dd["ci_low"], dd["ci_high"] - dd["mean"]])
            ax.bar(pos, dd["mean"], width, yerr=err, capsize=2, label=h)
        ax.set_xticks(np.arange(len(xs)), xs, rotation=30, ha="right")
        ax.set(title=c or "", ylabel=metric.upper())
    if hue:
        axes.ravel()[len(cols) - 1].legend(fontsize=7, loc="lower right")
    fig.suptitle(ci_label, fontsize=8, y=0.01, va="top")
    fig.tight_layout()
    return fig


def epoch_curves(curves: pd.DataFrame) -> plt.Figure:
    """T6's per-epoch curves: test SRCC by epoch, mean over splits, one line per regime, a panel per dataset /
    backbone / head (``curves``: :func:`nriqa_lib.tables.t6.epoch_table`'s rows)."""
    c = curves.assign(panel=curves["dataset"] + "\n" + curves["backbone"] + " / " + curves["head"])
    panels = list(dict.fromkeys(c["panel"]))
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, p in zip(axes.ravel(), panels):
        d = c[c["panel"] == p].assign(epoch=lambda f: f["epoch"] + 1)
        first = ax is axes.ravel()[0]
        sns.lineplot(d, x="epoch", y="mean", hue="regime", marker="o", ax=ax, legend=first)
        if first:
            ax.legend(fontsize=7, title="regime", title_fontsize=7)
        ax.set_title(p, fontsize=9)
        ax.set(ylabel="test SRCC (mean over splits)", xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def selection_shares_plot(shares: pd.DataFrame) -> plt.Figure:
    """Share of channels choosing each candidate activation (mean over splits), per layer and backbone."""
    g = shares.groupby(["dataset", "backbone", "head", "layer", "candidate"], as_index=False)["share"].mean()
    g["where"] = g["dataset"] + "/" + g["backbone"].str.replace("tf_efficientnet_", "") + "/" + g["head"] + "/" + g["layer"]
    wide = g.pivot_table(index="where", columns="candidate", values="share", fill_value=0)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(wide) + 1.5))
    wide.plot.barh(stacked=True, ax=ax, width=0.8)
    ax.set(xlabel="share of channels (argmax of the selection weights)", ylabel="")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def pred_vs_mos(df: pd.DataFrame, title: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 4))
    sns.scatterplot(data=df, x="pred", y="mos", s=10, ax=ax, hue=df.get("hue"))
    ax.set(title=title, xlabel="prediction", ylabel="MOS (normalised)")
    fig.tight_layout()
    return fig


def embedding_plot(xy: np.ndarray, mos: np.ndarray, title: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=mos, s=8, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="MOS")
    ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def per_view_plot(views: pd.DataFrame) -> plt.Figure:
    """Per-view Q_sim, Q_mag and w_sim (long: view, quantity, value)."""
    g = sns.catplot(data=views, x="quantity", y="value", kind="box", height=3.2, aspect=1.4)
    return g.figure


def gradcam_grid(items: list[tuple], title: str = "") -> plt.Figure:
    """Images (top row) and the same images under their Grad-CAM map (bottom row: the map upsampled bilinearly
    over the image, semi-transparent, so the regions it weighs are seen on the picture); items: (PIL image, cam
    array, caption)."""
    fig, axes = plt.subplots(2, len(items), figsize=(3 * len(items), 6), squeeze=False)
    for k, (im, cam, cap) in enumerate(items):
        w, h = im.size
        axes[0, k].imshow(im)
        axes[0, k].set_title(cap, fontsize=9)
        axes[1, k].imshow(im)
        m = axes[1, k].imshow(cam, cmap="jet", alpha=0.45, extent=(0, w, h, 0), interpolation="bilinear",
                              vmin=0.0, vmax=1.0)
        axes[1, k].set_title("Grad-CAM overlay", fontsize=9)
        for a in axes[:, k]:
            a.axis("off")
    if items:       # the maps are scaled to their maximum (training.explain): one scale for every panel
        fig.colorbar(m, ax=axes[1, :].tolist(), fraction=0.025, pad=0.02,
                     label="Grad-CAM weight (1: the map's maximum)")
    fig.suptitle(title)
    return fig


def forest(tests: pd.DataFrame, pool: pd.DataFrame, claim: str, cell: list[str], diff: str = "diff",
           title: str = "", ncol: int = 3) -> plt.Figure:
    """Forest plot: a row of panels per claim, one panel per dataset, each with its own x-axis (a synthetic set's
    wide intervals squeezed CLIVE's around 0 on a shared axis; issue 40): that dataset's cells with their 95% CI
    (each cell's own test) and its pooled row as a diamond (human-rated: black; the synthetic set on its own:
    grey), as in clinical meta-analyses; human-rated datasets pooled over k >= 2 get a panel of their own. Claims
    with one panel each are wrapped ``ncol`` to a row. The dashed line is no difference; intervals are clipped to
    [-2, 2], the range of an SRCC difference."""
    claims = list(dict.fromkeys(tests[claim]))
    rows = []                                   # per claim: its panels (dataset, cells, pooled rows)
    for c in claims:
        g, pr = tests[tests[claim] == c], pool[pool[claim] == c]
        keys = list(dict.fromkeys(g["dataset"].astype(str))) if "dataset" in g else [""]
        panels = [(k, g[g["dataset"].astype(str) == k] if k else g,
                   pr[pr["datasets"].astype(str) == k] if k else pr) for k in keys]
        multi = pr[(pr["scope"] == "human-rated") & (pr["k"] > 1)] if len(pr) else pr
        if len(multi):
            panels.append(("pooled over human-rated datasets", g.iloc[:0], multi))
        rows.append([(c, *panel) for panel in panels])
    nc = max((len(r) for r in rows), default=1)
    if nc == 1:                                 # one panel per claim: wrap them
        nc = max(1, min(ncol, len(rows)))
        flat = [r[0] for r in rows]
        rows = [flat[i:i + nc] for i in range(0, len(flat), nc)]
    heights = [0.32 * max((len(cg) + len(pg) for _, _, cg, pg in r), default=1) + 1.4 for r in rows] or [1.8]
    fig, axes = plt.subplots(len(heights), nc, figsize=(4.6 * nc, sum(heights) + 0.4), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax in axes.ravel():
        ax.axis("off")
    for row, axrow in zip(rows, axes):
        for ax, (c, key, g, pr) in zip(axrow, row):
            ax.axis("on")
            g, pr = g.reset_index(drop=True), pr.reset_index(drop=True)
            lo, hi = np.clip(g["ci_low"], -2, 2), np.clip(g["ci_high"], -2, 2)
            labels = ["/".join(str(v) for k, v in zip(cell, r) if k != "dataset") or str(key)
                      for r in g[cell].astype(str).itertuples(index=False)]
            y = np.arange(len(g))[::-1] + 1.0 + len(pr)
            ax.errorbar(g[diff], y, xerr=[g[diff] - lo, hi - g[diff]], fmt="s", ms=4, capsize=2, color="0.25")
            for j, r in pr.iterrows():
                yc = len(pr) - j - 0.5
                human = r.scope == "human-rated"
                ax.fill([max(r.ci_low, -2), r.estimate, min(r.ci_high, 2), r.estimate], [yc, yc + 0.3, yc, yc - 0.3],
                        color="k" if human else "0.6")
                i2 = "" if not np.isfinite(r.i2) else f", I²={r.i2:.0%}"
                labels.append(f"pooled, human-rated (k={int(r.k)}{i2})" if human else "cells combined (synthetic)")
                y = np.append(y, yc)
            ax.axvline(0, ls="--", color="0.5", lw=1)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))    # 7+ ticks ran into each other
            ax.set_yticks(y, labels, fontsize=7)
            ax.set(title=f"{c}\n{key}" if key else str(c), xlabel=f"{diff} (SRCC)")
            ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (sum(heights) + 0.4)))     # the suptitle above the first titles
    return fig


def claims_forest(f: pd.DataFrame, title: str = "") -> plt.Figure:
    """Every claim's pooled effect (rows of :func:`nriqa_lib.report.summary.findings`, labelled by ``label``)
    with its 95% CI (thin) and its interval at the verdict's adjusted level (thick: it excludes 0 exactly when the
    verdict is significant; for an equivalence claim, its margin drawn as brackets), coloured by the verdict;
    intervals inside [-2, 2], the range of an SRCC difference."""
    import textwrap
    n = max(len(f), 1)
    fig, ax = plt.subplots(figsize=(9.0, 0.42 * n + 1.6))
    colours = {"holds (significant)": "C2", "reversed (significant)": "C3", "equivalent": "C0"}

    def colour(v: str) -> str:
        return next((c for k, c in colours.items() if str(v).startswith(k)), "0.45")
    y = np.arange(len(f))[::-1]
    for yi, r in zip(y, f.itertuples()):
        c = colour(r.verdict)
        lo, hi = max(r.ci_low, -2.0), min(r.ci_high, 2.0)
        ax.plot([lo, hi], [yi, yi], color=c, lw=1, solid_capstyle="butt")
        if np.isfinite(getattr(r, "adj_low", np.nan)):
            ax.plot([r.adj_low, r.adj_high], [yi, yi], color=c, lw=4, alpha=0.55, solid_capstyle="butt")
        if np.isfinite(getattr(r, "margin", np.nan)):
            ax.plot([-r.margin, r.margin], [yi, yi], ls="", marker="|", ms=12, color="C0")
        ax.plot([r.estimate], [yi], "D", ms=5, color=c)
    ax.axvline(0, ls="--", color="0.5", lw=1)
    ax.set_yticks(y, [textwrap.fill(str(t), 48) for t in f["label"]] if len(f) else [], fontsize=8)
    ax.set_ylim(-0.7, len(f) - 0.3)
    ax.set(xlabel="effect: SRCC difference (claimed direction > 0)", title=title)
    handles = [plt.Line2D([], [], color=c, marker="D", ls="", label=v) for v, c in
               (*colours.items(), ("not significant / not shown", "0.45"))]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.9 / (0.42 * n + 1.6)),
              ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def power_plot(curves: pd.DataFrame, claim: str, title: str = "") -> plt.Figure:
    """Power vs number of splits, one line per claim (at its pooled effect), 80% marked, the splits used dotted."""
    n = curves[claim].nunique()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    # distinct hues (tab10, then tab20) and the legend beside the axes, not over the curves (12 near-identical
    # hues under the curves were unreadable)
    sns.lineplot(data=curves, x="n_splits", y="power", hue=claim, ax=ax,
                 palette="tab10" if n <= 10 else "tab20")
    used = curves[curves["used"]]
    ax.scatter(used["n_splits"], used["power"], color="k", zorder=3, s=18)
    ax.axhline(0.8, ls="--", color="0.5", lw=1)
    ax.set(ylim=(0, 1.02), xlabel="number of splits J", ylabel="power at the row's Holm level")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig
