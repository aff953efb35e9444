"""The study's four tables, computed from saved predictions/features with their statistics.

Each ``tN_*`` function reads what the DVC stages wrote, builds long rows -> summaries (95% CIs that fit
the design: Nadeau-Bengio corrected over overlapping splits, or a two-level bootstrap where heads share
their test images) -> paired tests with Holm's adjustment within a stated family (``results.compare``) ->
pivots, exports CSV/Markdown/LaTeX under ``out_dir/tables``, figures under ``out_dir/figures`` and
``out_dir/metrics.json``, and returns the frames so the notebook can show them.
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
from .results import (Design, compare, export_table, family_note, format_pm, holm_by_family, split_metrics,
                      summarize_groups, write_metrics_json)
from .stats import bootstrap_ci, paired_bootstrap, williams_t
from .study import (cross_dataset, cross_heads, features_dir, is_control, load_predictions, load_shares,
                    single_partition, split_sizes, splits_path)

__all__ = ["data_overview", "t1_backbones", "t2_activations", "t3_selection", "t4_zeroshot", "designs", "protocol"]

METRICS = ("srcc", "plcc")   # plcc = raw Pearson (as P1)


def _dirs(out_dir: str | Path) -> tuple[Path, Path, Path]:
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return out, out / "tables", out / "figures"


def designs(datasets) -> dict[str, Design]:
    """Per dataset, its design: random/published splits (Nadeau-Bengio, with mean part sizes) or one
    partition trained with several seeds (shared test images: two-level bootstrap)."""
    out = {}
    for d in datasets:
        if single_partition(d):
            out[d] = Design("shared", what="training seeds")
        else:
            n_tr, n_te = split_sizes(load_splits(splits_path(d)))
            out[d] = Design("splits", n_tr, n_te)
    return out


def protocol(p: Params) -> str:
    """How the epoch (and ridge's alpha) was chosen, from the params actually used."""
    if p.train.select_on == "test":
        return "paper-faithful protocol: epoch chosen on the test part itself (optimistic, as P1)"
    return "clean protocol: epoch chosen on val"


def _ci_label(summary: pd.DataFrame) -> str:
    kinds = sorted(summary["ci_kind"].dropna().unique())
    return "95% CI: " + ("; ".join(kinds) if kinds else "none")


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
    """T1: every backbone with the identical head (t1.head), per dataset; pairwise tests between backbones
    (Holm family: all backbone pairs on one dataset)."""
    out, tdir, fdir = _dirs(out_dir)
    pred = load_predictions(p.data.datasets, p.features.backbones)
    pred = pred[(pred["head"] == p.t1.head) & (pred["part"] == "test")]
    des = designs(p.data.datasets)
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], des, METRICS, p.stats.n_boot, p.stats.seed)
    table = format_pm(summ, ["dataset"], ["metric", "backbone"])
    tests = compare(rows, pred, ["dataset"], "backbone", None, des, ["dataset"], p.stats.alpha, p.stats.n_boot,
                    p.stats.seed)
    cap = (f"T1: backbones with the identical {p.t1.head} head; test SRCC and raw PLCC, mean ± sd over splits "
           f"({protocol(p)}; the 95% CIs in t1_summary.csv are {', '.join(sorted(summ['ci_kind'].unique()))}).")
    export_table(table, tdir, "t1_backbones", cap)
    export_table(tests, tdir, "t1_tests", "T1 pairwise tests (SRCC). " + family_note(tests, "all backbone pairs on one dataset", p.stats.alpha))
    rows.to_csv(tdir / "t1_rows.csv", index=False, lineterminator="\n")
    summ.to_csv(tdir / "t1_summary.csv", index=False, lineterminator="\n")
    plots.save(plots.bars_with_ci(summ, "backbone", None, "dataset", ci_label=_ci_label(summ)), fdir / "t1_srcc.png")
    write_metrics_json(out / "metrics.json", {d: {b: g.set_index("metric")["mean"].to_dict()
                                                  for b, g in s.groupby("backbone")}
                                              for d, s in summ.groupby("dataset")})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests}


def t2_activations(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T2: the activation ablation per backbone and dataset, tests vs t2.reference (Holm family: one head
    vs the reference over every dataset x backbone, i.e. one P1 claim); plus cross-dataset."""
    out, tdir, fdir = _dirs(out_dir)
    backbones = [b for b in p.features.backbones if not is_control(b)]
    pred = load_predictions(p.data.datasets, backbones)
    heads = list(dict.fromkeys([p.t2.reference, *p.t2.heads]))
    pred = pred[pred["head"].isin(heads) & (pred["part"] == "test")]
    des = designs(p.data.datasets)
    rows = split_metrics(pred, ["dataset", "backbone", "head"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone", "head"], des, METRICS, p.stats.n_boot, p.stats.seed)
    table = format_pm(summ[summ["metric"] == "srcc"], ["dataset", "backbone"], ["head"])
    tests = compare(rows, pred, ["dataset", "backbone"], "head", p.t2.reference, des, ["a"], p.stats.alpha,
                    p.stats.n_boot, p.stats.seed)
    fam = f"one head vs {p.t2.reference} across all datasets x backbones (one claim)"
    export_table(table, tdir, "t2_activations", f"T2: activation ablation, test SRCC mean ± sd over splits ({protocol(p)})")
    export_table(tests, tdir, "t2_tests", f"T2: each head vs {p.t2.reference} (SRCC). " + family_note(tests, fam, p.stats.alpha))
    rows.to_csv(tdir / "t2_rows.csv", index=False, lineterminator="\n")
    summ.to_csv(tdir / "t2_summary.csv", index=False, lineterminator="\n")
    plots.save(plots.bars_with_ci(summ.assign(where=summ["dataset"] + "/" + summ["backbone"]), "head", None, "where",
                                  ci_label=_ci_label(summ)), fdir / "t2_srcc.png")
    cross_frames = []
    pairs = [(a, b) for a, b in p.t2.cross if a in p.data.datasets and b in p.data.datasets]
    for a, b in pairs:
        for bb in backbones:
            cp = cross_dataset(p, a, b, bb, cross_heads(p))
            cp.insert(0, "backbone", bb)
            cp.insert(0, "dataset", f"{a}->{b}")
            cross_frames.append(cp)
    cross = {}
    if cross_frames:
        cpred = pd.concat(cross_frames, ignore_index=True).assign(part="test")
        cr = split_metrics(cpred, ["dataset", "backbone", "head"])
        # source splits overlap in their training sets: their head-level variance gets Nadeau-Bengio's factor
        cdes = {}
        for a, b in pairs:
            n_tr, n_te = split_sizes(load_splits(splits_path(a)))
            J = load_splits(splits_path(a))["split"].nunique()
            infl = 1 + J * n_te / n_tr if J > 1 else 1.0
            cdes[f"{a}->{b}"] = Design("shared", what=f"source splits, variance x{infl:.2f} for their overlap",
                                       head_inflation=infl)
        csum = summarize_groups(cr, cpred, ["dataset", "backbone", "head"], cdes, METRICS, p.stats.n_boot, p.stats.seed)
        # every source split's head is tested on the same whole target set: the two-level bootstrap
        # (source splits, then target images) carries both sources of variance
        ctests = compare(cr, cpred, ["dataset", "backbone"], "head", p.t2.reference, cdes, ["a"], p.stats.alpha,
                         p.stats.n_boot, p.stats.seed)
        sel = ("epoch chosen on the source split's val part" if p.train.select_on == "val"
               else "epoch chosen on the target set itself (optimistic, as P1)")
        export_table(format_pm(csum[csum["metric"] == "srcc"], ["dataset", "backbone"], ["head"]), tdir, "t2_cross",
                     f"T2 cross-dataset: train on the first dataset (train part of each split), test on all of the "
                     f"second; SRCC mean ± sd over source splits ({sel}); 95% CIs in t2_cross_summary.csv: two-level "
                     f"bootstrap (source splits, then target images)")
        export_table(ctests, tdir, "t2_cross_tests", f"T2 cross-dataset tests vs {p.t2.reference} (paired two-level "
                     f"bootstrap). " + family_note(ctests, fam, p.stats.alpha))
        csum.to_csv(tdir / "t2_cross_summary.csv", index=False, lineterminator="\n")
        cross = {"cross_rows": cr, "cross_summary": csum, "cross_tests": ctests}
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("head")["mean"].to_dict()
                                              for (d, b), g in summ[summ["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": summ, "table": table, "tests": tests, **cross}


def best_fixed(pred: pd.DataFrame, fixed: list[str], select_on: str) -> pd.DataFrame:
    """Per dataset/backbone, the fixed-activation head with the highest mean SRCC on ``select_on`` (val in
    the clean protocol, so the test numbers of T3 stay untouched by the choice)."""
    sel = pred[pred["head"].isin(fixed) & (pred["part"] == select_on)]
    m = split_metrics(sel, ["dataset", "backbone", "head"], part=select_on)
    m = m[m["metric"] == "srcc"].groupby(["dataset", "backbone", "head"], as_index=False)["value"].mean()
    best = m.loc[m.groupby(["dataset", "backbone"])["value"].idxmax(), ["dataset", "backbone", "head", "value"]]
    return best.rename(columns={"head": "best_fixed", "value": f"best_fixed_{select_on}_srcc"})


def t3_selection(p: Params, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """T3: B_Gated and the K-way selection vs the best fixed activation of T2, chosen per dataset/backbone by
    mean SRCC on val (on test only under the paper profile's select_on: test), with per-channel selection
    shares. Holm family: one selection head vs best fixed across datasets x backbones."""
    out, tdir, fdir = _dirs(out_dir)
    backbones = [b for b in p.features.backbones if not is_control(b)]
    pred = load_predictions(p.data.datasets, backbones)
    fixed = [h for h in dict.fromkeys([p.t2.reference, *p.t2.heads]) if h != "ridge"]
    best = best_fixed(pred, fixed, p.train.select_on)
    test = pred[pred["part"] == "test"].merge(best[["dataset", "backbone", "best_fixed"]], on=["dataset", "backbone"])
    keep = test[test["head"].isin(["B_Gated", "kway"]) | (test["head"] == test["best_fixed"])].copy()
    keep["role"] = np.where(keep["head"].isin(["B_Gated", "kway"]), keep["head"], "best fixed")
    des = designs(p.data.datasets)
    rows = split_metrics(keep, ["dataset", "backbone", "role"])
    ksum = summarize_groups(rows, keep, ["dataset", "backbone", "role"], des, METRICS, p.stats.n_boot, p.stats.seed)
    tests = compare(rows, keep, ["dataset", "backbone"], "role", "best fixed", des, ["a"], p.stats.alpha,
                    p.stats.n_boot, p.stats.seed)
    table = format_pm(ksum[ksum["metric"] == "srcc"], ["dataset", "backbone"], ["role"]).join(best.set_index(["dataset", "backbone"]))
    shares = load_shares(p.data.datasets, backbones)
    share_tbl = shares.groupby(["dataset", "backbone", "head", "layer", "candidate"])["share"].agg(["mean", "std"]).round(3)
    how = "mean val SRCC" if p.train.select_on == "val" else "mean test SRCC (paper profile: optimistic)"
    export_table(table, tdir, "t3_selection", f"T3: learnable activation selection vs the best fixed activation, test "
                 f"SRCC mean ± sd over splits; best fixed = the T2 head with the highest {how} per dataset/backbone "
                 f"({protocol(p)})")
    export_table(tests, tdir, "t3_tests", "T3: selection heads vs best fixed (SRCC). "
                 + family_note(tests, "one selection head vs best fixed across all datasets x backbones", p.stats.alpha))
    export_table(share_tbl, tdir, "t3_shares", "T3: share of channels choosing each candidate (mean, sd over splits)")
    ksum.to_csv(tdir / "t3_summary.csv", index=False, lineterminator="\n")
    plots.save(plots.selection_shares_plot(shares), fdir / "t3_shares.png")
    write_metrics_json(out / "metrics.json", {f"{d}/{b}": g.set_index("role")["mean"].to_dict()
                                              for (d, b), g in ksum[ksum["metric"] == "srcc"].groupby(["dataset", "backbone"])})
    return {"rows": rows, "summary": ksum, "table": table, "tests": tests, "shares": share_tbl, "best_fixed": best}


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
        claim = "magnitude cue: pretrained vs random-init backbone"
        if src in p.t4.clip_models and score != "CLIP-IQA":
            refs, claim = [(src, "CLIP-IQA")], "P2: zero-shot score vs CLIP-IQA"
        for rsrc, rscore in refs:
            if (d, rsrc, rscore) not in preds:
                continue
            other = preds[(d, rsrc, rscore)][0]
            pb = paired_bootstrap(vals, other, mos, srcc, n_boot=n_boot, seed=seed)
            r12, r13, r23 = plcc(vals, mos), plcc(other, mos), plcc(vals, other)
            w = williams_t(r12, r13, r23, len(mos))
            tests.append({"claim": claim, "dataset": d, "a": f"{src}: {score}", "b": f"{rsrc}: {rscore}",
                          "srcc_diff": pb["diff"], "ci_low": pb["ci_low"], "ci_high": pb["ci_high"], "se": pb["se"],
                          "n_splits": 1, "test": "paired bootstrap over images", "p": pb["p"],
                          "plcc_diff": r12 - r13, "p_williams": w["p"]})
    tests = pd.DataFrame(tests)
    if len(tests):
        tests = holm_by_family(tests, ["claim"], p.stats.alpha, p_cols=("p", "p_williams"))
    table = res.set_index(["dataset", "source", "score"])[["srcc", "srcc_ci_low", "srcc_ci_high", "plcc",
                                                           "plcc_logistic5", "krcc", "rmse"]].round(4)
    export_table(table, tdir, "t4_zeroshot", "T4: zero-shot scores on whole datasets; SRCC with 95% bootstrap CI, "
                 "raw PLCC and PLCC after the 5-parameter logistic (as P2), KRCC, RMSE (logistic-5)")
    export_table(tests, tdir, "t4_tests", "T4: paired bootstrap (images) of SRCC differences and Williams' t on "
                 "PLCC. " + family_note(tests, "one claim across all datasets and backbones", p.stats.alpha))
    notes_df = pd.DataFrame(notes, columns=["dataset", "model", "note"])
    export_table(notes_df.set_index(["dataset", "model"]), tdir, "t4_notes", "T4: CLIP models not run")
    fig_df = res.assign(mean=res["srcc"], ci_low=res["srcc_ci_low"], ci_high=res["srcc_ci_high"], metric="srcc")
    plots.save(plots.bars_with_ci(fig_df, "source", "score", "dataset",
                                  ci_label="95% CI: percentile bootstrap over images (whole dataset)"), fdir / "t4_srcc.png")
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
    views = zs.clip_view_embeddings(model, man, pp.mean, pp.std, pre, "drop", cache=Path("cache") / "maclip",
                                    identity={"model": model_name, "weights": bb.weight_id})
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
