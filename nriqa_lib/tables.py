"""The study's four tables, computed from saved predictions/features with their statistics.

Each ``tN_*`` function reads what the DVC stages wrote, builds long rows -> summaries -> paired tests
(Nadeau-Bengio + Wilcoxon, Holm over the table) -> pivots, exports CSV/Markdown/LaTeX under
``out_dir/tables``, figures under ``out_dir/figures`` and ``out_dir/metrics.json``, and returns the
frames so the notebook can show them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .backbones import REGISTRY, WeightsError
from .config import Params
from .data.manifest import load_dataset
from .data.splits import load_splits
from .features import load_feature_set
from .metrics import all_metrics, plcc, srcc
from .results import export_table, format_pm, paired_tests, split_metrics, summary_table, write_metrics_json
from .stats import bootstrap_ci, holm, paired_bootstrap, williams_t
from .study import cross_dataset, features_dir, is_control, load_predictions, load_shares, split_sizes, splits_path

__all__ = ["data_overview", "t1_backbones", "t2_activations", "t3_selection", "t4_zeroshot", "nb_sizes"]

METRICS = ("srcc", "plcc")   # plcc = raw Pearson (as P1)


def _dirs(out_dir: str | Path) -> tuple[Path, Path, Path]:
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return out, out / "tables", out / "figures"


def nb_sizes(datasets) -> dict[str, tuple[int, int]]:
    return {d: split_sizes(load_splits(splits_path(d))) for d in datasets}


def _tests_per_dataset(rows: pd.DataFrame, by: list[str], factor: str, reference, sizes, alpha) -> pd.DataFrame:
    """paired_tests within each dataset (its own split sizes), then Holm over the whole table."""
    frames = []
    for d, g in rows.groupby("dataset"):
        n_tr, n_te = sizes[d]
        t = paired_tests(g, ["dataset", *by], factor, reference, n_tr, n_te, alpha=alpha)
        frames.append(t)
    t = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(t):
        for col in ("p_nb", "p_wilcoxon"):
            t[f"{col}_holm"] = holm(t[col].to_numpy(), alpha)[1]
        t["significant"] = t["p_nb_holm"] < alpha
    return t


def data_overview(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Per dataset: size, MOS range, split sizes; MOS histograms; sample images across quality."""
    out, tdir, fdir = _dirs(out_dir)
    tables, rows = {}, []
    for d in p.data.datasets:
        m = load_dataset(d, p.data.roots, decode=False)
        tables[d] = m.table
        sp = load_splits(splits_path(d))
        sizes = sp.groupby(["split", "part"]).size().unstack(fill_value=0).mean().round(1)
        rows.append({"dataset": d, "images": len(m.table), "groups": m.table["group"].nunique(),
                     "mos_min": m.table["mos"].min(), "mos_max": m.table["mos"].max(),
                     "splits": sp["split"].nunique(), "scheme": p.splits.schemes.get(d, "random"),
                     **{f"n_{k}": v for k, v in sizes.items()}})
        q = m.table.sort_values("mos")
        pick = q.iloc[np.linspace(0, len(q) - 1, 5).round().astype(int)]
        plots.save(plots.sample_grid([m.root / i for i in pick["image"]], [f"MOS {v:.2f}" for v in pick["mos"]]),
                   fdir / f"samples_{d}.png")
    summary = pd.DataFrame(rows).set_index("dataset").round(3)
    export_table(summary, tdir, "datasets", "Datasets, MOS range (normalised) and mean split sizes")
    plots.save(plots.mos_histograms(tables), fdir / "mos_histograms.png")
    return {"summary": summary}


def t1_backbones(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T1: every backbone with the identical head (t1.head), per dataset; pairwise tests between backbones."""
    out, tdir, fdir = _dirs(out_dir)
    pred = load_predictions(p.data.datasets, p.features.backbones)
    pred = pred[pred["head"] == p.t1.head]
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summary_table(rows, ["dataset", "backbone"], METRICS)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = _tests_per_dataset(rows, [], "backbone", None, nb_sizes(p.data.datasets), p.stats.alpha)
    cap = (f"T1: backbones with the identical {p.t1.head} head; SRCC and raw PLCC on the test parts, mean ± sd over "
           f"splits (clean protocol: epoch chosen on val).")
    export_table(table, tdir, "t1_backbones", cap)
    export_table(tests, tdir, "t1_tests",
                 "T1 pairwise tests (SRCC): Nadeau-Bengio corrected t and Wilcoxon, Holm-adjusted over the table")
    rows.to_csv(tdir / "t1_rows.csv", index=False, lineterminator="\n")
    summ.to_csv(tdir / "t1_summary.csv", index=False, lineterminator="\n")
    plots.save(plots.bars_with_ci(summ, "backbone", None, "dataset"), fdir / "t1_srcc.png")
    write_metrics_json(out / "metrics.json", {d: {b: g.set_index("metric")["mean"].to_dict()
                                                  for b, g in s.groupby("backbone")}
                                              for d, s in summ.groupby("dataset")})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests}


def t2_activations(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T2: the activation ablation per backbone and dataset, tests vs t2.reference; plus cross-dataset."""
    out, tdir, fdir = _dirs(out_dir)
    backbones = [b for b in p.features.backbones if not is_control(b)]
    pred = load_predictions(p.data.datasets, backbones)
    heads = list(dict.fromkeys([p.t2.reference, *p.t2.heads]))
    pred = pred[pred["head"].isin(heads)]
    rows = split_metrics(pred, ["dataset", "backbone", "head"])
    summ = summary_table(rows, ["dataset", "backbone", "head"], METRICS)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
    tests = _tests_per_dataset(rows, ["backbone"], "head", p.t2.reference, nb_sizes(p.data.datasets), p.stats.alpha)
    export_table(table, tdir, "t2_activations", f"T2: activation ablation, test SRCC mean ± sd over splits")
    export_table(tests, tdir, "t2_tests",
                 f"T2: each head vs {p.t2.reference} (SRCC), Holm-adjusted over the table")
    rows.to_csv(tdir / "t2_rows.csv", index=False, lineterminator="\n")
    summ.to_csv(tdir / "t2_summary.csv", index=False, lineterminator="\n")
    plots.save(plots.bars_with_ci(summ.assign(where=summ["dataset"] + "/" + summ["backbone"]), "head", None, "where"),
               fdir / "t2_srcc.png")
    cross_rows = []
    pairs = [(a, b) for a, b in p.t2.cross if a in p.data.datasets and b in p.data.datasets]
    for a, b in pairs:
        for bb in backbones:
            cp = cross_dataset(p, a, b, bb, [h for h in heads if h != "ridge"])
            r = split_metrics(cp.assign(part="test"), ["head"])
            r.insert(0, "backbone", bb)
            r.insert(0, "dataset", f"{a}->{b}")
            cross_rows.append(r)
    cross = {}
    if cross_rows:
        cr = pd.concat(cross_rows, ignore_index=True)
        csum = summary_table(cr, ["dataset", "backbone", "head"], METRICS)
        # the whole test dataset is shared by all splits: train/test do not overlap across datasets, so
        # the Nadeau-Bengio correction uses n_test/n_train of the source split
        sizes = {f"{a}->{b}": nb_sizes([a])[a] for a, b in pairs}
        ctests = _tests_per_dataset(cr, ["backbone"], "head", p.t2.reference, sizes, p.stats.alpha)
        export_table(format_pm(csum[csum["metric"] == "srcc"], ["dataset", "backbone"], ["head"]), tdir, "t2_cross",
                     "T2 cross-dataset: train on the first dataset (its splits), test on all of the second; SRCC")
        export_table(ctests, tdir, "t2_cross_tests",
                     f"T2 cross-dataset tests vs {p.t2.reference}, Holm-adjusted")
        cross = {"cross_rows": cr, "cross_summary": csum, "cross_tests": ctests}
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("head")["mean"].to_dict()
                                              for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, **cross}


def t3_selection(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T3: B_Gated and the K-way selection vs the best fixed activation of T2 (chosen per dataset/backbone
    by mean test SRCC, which favours the fixed head), with per-channel selection shares."""
    out, tdir, fdir = _dirs(out_dir)
    backbones = [b for b in p.features.backbones if not is_control(b)]
    pred = load_predictions(p.data.datasets, backbones)
    fixed = [h for h in dict.fromkeys([p.t2.reference, *p.t2.heads]) if h != "ridge"]
    rows = split_metrics(pred[pred["head"].isin(fixed + ["B_Gated", "kway"])], ["dataset", "backbone", "head"])
    summ = summary_table(rows, ["dataset", "backbone", "head"], METRICS)
    s = summ[(summ["metric"] == "srcc") & summ["head"].isin(fixed)]
    best = s.loc[s.groupby(["dataset", "backbone"])["mean"].idxmax(), ["dataset", "backbone", "head"]]
    best = best.rename(columns={"head": "best_fixed"})
    keep = rows.merge(best, on=["dataset", "backbone"])
    keep = keep[keep["head"].isin(["B_Gated", "kway"]) | (keep["head"] == keep["best_fixed"])].copy()
    keep["role"] = np.where(keep["head"].isin(["B_Gated", "kway"]), keep["head"], "best fixed")
    tests = _tests_per_dataset(keep, ["backbone"], "role", "best fixed", nb_sizes(p.data.datasets), p.stats.alpha)
    ksum = summary_table(keep, ["dataset", "backbone", "role"], METRICS)
    table = format_pm(ksum[ksum["metric"] == "srcc"], ["dataset", "backbone"], ["role"]).join(best.set_index(["dataset", "backbone"]))
    shares = load_shares(p.data.datasets, backbones)
    share_tbl = shares.groupby(["dataset", "backbone", "head", "layer", "candidate"])["share"].agg(["mean", "std"]).round(3)
    export_table(table, tdir, "t3_selection", "T3: learnable activation selection vs the best fixed activation, test SRCC")
    export_table(tests, tdir, "t3_tests",
                 "T3: selection heads vs best fixed (SRCC), Holm-adjusted")
    export_table(share_tbl, tdir, "t3_shares", "T3: share of channels choosing each candidate (mean, sd over splits)")
    plots.save(plots.selection_shares_plot(shares), fdir / "t3_shares.png")
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("role")["mean"].to_dict()
                                              for (d, b), g in ksum[ksum["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": ksum, "table": table, "tests": tests, "shares": share_tbl}


def _zs_row(dataset: str, source: str, score: str, pred: np.ndarray, mos: np.ndarray, n_boot: int, seed: int) -> dict:
    m = all_metrics(pred, mos, fit="logistic5")
    ci_s = bootstrap_ci(pred, mos, srcc, n_boot=n_boot, seed=seed)
    ci_p = bootstrap_ci(pred, mos, lambda a, b: plcc(a, b), n_boot=n_boot, seed=seed)
    return {"dataset": dataset, "source": source, "score": score, **m, "srcc_ci_low": ci_s["ci_low"],
            "srcc_ci_high": ci_s["ci_high"], "plcc_ci_low": ci_p["ci_low"], "plcc_ci_high": ci_p["ci_high"]}


def t4_zeroshot(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T4: the magnitude cue (Q_mag, L2 norm) on every configured backbone's features, and CLIP-IQA /
    MA-CLIP / the ablation grid on every CLIP model whose weights exist; bootstrap CIs, paired tests."""
    from . import zeroshot as zs
    out, tdir, fdir = _dirs(out_dir)
    n_boot, seed = p.stats.n_boot, p.stats.seed
    rows, tests, notes, preds = [], [], [], {}
    for d in p.data.datasets:
        man = load_dataset(d, p.data.roots, decode=False).table.set_index("image")
        for bb in p.features.backbones:
            fs = load_feature_set(features_dir(d, bb))
            mos = man.loc[fs.images, "mos"].to_numpy()
            for score, vals in (("Q_mag (lambda 0.5)", zs.magnitude_scores(fs.features, 0.5)),
                                ("L2 norm", zs.l2_norm_scores(fs.features))):
                rows.append(_zs_row(d, bb, score, vals, mos, n_boot, seed))
                preds[(d, bb, score)] = (vals, mos)
        for cm in p.t4.clip_models:
            try:
                r, pr = _clip_rows(p, d, cm, n_boot, seed)
                rows += r
                preds.update(pr)
            except WeightsError as e:
                notes.append({"dataset": d, "model": cm, "note": f"not run: {e}"})
    res = pd.DataFrame(rows)
    # paired bootstrap (SRCC) of each real backbone's cue vs the random control, and MA-CLIP vs CLIP-IQA
    controls = [b for b in p.features.backbones if is_control(b)]
    for (d, src, score), (vals, mos) in preds.items():
        refs = [(c, score) for c in controls if src not in controls]
        if src in p.t4.clip_models and score != "CLIP-IQA":
            refs = [(src, "CLIP-IQA")]
        for rsrc, rscore in refs:
            if (d, rsrc, rscore) not in preds:
                continue
            other = preds[(d, rsrc, rscore)][0]
            pb = paired_bootstrap(vals, other, mos, srcc, n_boot=n_boot, seed=seed)
            r12, r13, r23 = plcc(vals, mos), plcc(other, mos), plcc(vals, other)
            w = williams_t(r12, r13, r23, len(mos))
            tests.append({"dataset": d, "a": f"{src}: {score}", "b": f"{rsrc}: {rscore}", "srcc_diff": pb["diff"],
                          "ci_low": pb["ci_low"], "ci_high": pb["ci_high"], "p_bootstrap": pb["p"],
                          "plcc_diff": r12 - r13, "p_williams": w["p"]})
    tests = pd.DataFrame(tests)
    if len(tests):
        tests["p_bootstrap_holm"] = holm(tests["p_bootstrap"].to_numpy(), p.stats.alpha)[1]
        tests["p_williams_holm"] = holm(tests["p_williams"].to_numpy(), p.stats.alpha)[1]
        tests["significant"] = tests["p_bootstrap_holm"] < p.stats.alpha
    table = res.set_index(["dataset", "source", "score"])[["srcc", "srcc_ci_low", "srcc_ci_high", "plcc",
                                                           "plcc_logistic5", "krcc", "rmse"]].round(4)
    export_table(table, tdir, "t4_zeroshot", "T4: zero-shot scores on whole datasets; SRCC with 95% bootstrap CI, "
                 "raw PLCC and PLCC after the 5-parameter logistic (as P2), KRCC, RMSE (logistic-5)")
    export_table(tests if len(tests) else tests, tdir, "t4_tests",
                 "T4: paired bootstrap of SRCC differences and Williams' t on PLCC, Holm-adjusted")
    notes_df = pd.DataFrame(notes, columns=["dataset", "model", "note"])
    export_table(notes_df.set_index(["dataset", "model"]), tdir, "t4_notes", "T4: CLIP models not run")
    fig_df = res.assign(mean=res["srcc"], ci_low=res["srcc_ci_low"], ci_high=res["srcc_ci_high"], metric="srcc")
    plots.save(plots.bars_with_ci(fig_df, "source", "score", "dataset"), fdir / "t4_srcc.png")
    write_metrics_json(out / "metrics.json", {f"{r.dataset}/{r.source}/{r.score}": {"srcc": r.srcc, "plcc": r.plcc}
                                              for r in res.itertuples()})
    return {"table": table, "tests": tests, "notes": notes_df, "rows": res}


def _clip_rows(p: Params, dataset: str, model_name: str, n_boot: int, seed: int):
    """CLIP-IQA, MA-CLIP and the ablation grid for one CLIP model (raises WeightsError when absent)."""
    import open_clip
    from . import zeroshot as zs
    from .backbones import create_backbone
    bb = create_backbone(model_name, weights=p.features.weights.get(model_name))
    model, pp = bb.model, bb.preprocess
    tok = open_clip.get_tokenizer(REGISTRY[model_name].arch)
    man = load_dataset(dataset, p.data.roots, decode=False)
    mos = man.table["mos"].to_numpy()
    pre = p.t4.pre_resize.get(dataset)
    views = zs.clip_view_embeddings(model, man, pp.mean, pp.std, pre, "drop",
                                    cache=Path("cache") / "maclip" / f"{dataset}__{model_name}__{bb.weight_id.replace(':', '_')}.npz")
    text = zs.text_features(model, tok).numpy()
    scale = float(model.logit_scale.exp())
    grid = zs.ablation_grid(p.t4.lambdas, p.t4.biases, p.t4.alphas)
    st = zs.score_table(views, text, scale, grid)
    rows, preds = [], {}
    ciqa = zs.clipiqa_scores(model, tok, man, pp.mean, pp.std)
    rows.append(_zs_row(dataset, model_name, "CLIP-IQA", ciqa, mos, n_boot, seed))
    preds[(dataset, model_name, "CLIP-IQA")] = (ciqa, mos)
    for name, g in st.groupby("config", sort=False):
        vals = g.sort_values("index")["score"].to_numpy()
        rows.append(_zs_row(dataset, model_name, name, vals, mos, n_boot, seed))
        preds[(dataset, model_name, name)] = (vals, mos)
    return rows, preds
