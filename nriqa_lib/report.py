"""The one-page report: the four tables, key figures, and a generated verdict on each of the papers' claims."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .io import atomic_write_text

__all__ = ["claims", "gather_tables", "hidden_embedding", "gradcam", "write_report", "key_figures"]


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
        a_ctrl, b_ctrl = str(r.a).startswith("random_"), str(r.b).startswith("random_")
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
    t4n = _read(results, "t4/tables/t4_notes.csv")
    for r in t4n.itertuples():
        out.append(("P2: MA-CLIP beats CLIP-IQA", f"{r.dataset}/{r.model}", np.nan, np.nan,
                    "not testable here (CLIP weights absent)"))
    df = pd.DataFrame(out, columns=["claim", "where", "srcc_diff", "p_holm", "verdict"])
    return df.round({"srcc_diff": 4, "p_holm": 4})


def gather_tables(results: str | Path, ext: str = "md") -> str:
    """The four main tables and their tests, in order, as Markdown (``ext="md"``) or LaTeX (``"tex"``)."""
    results = Path(results)
    parts = []
    for rel in ("t1/tables/t1_backbones", "t1/tables/t1_tests", "t2/tables/t2_activations",
                "t2/tables/t2_tests", "t2/tables/t2_cross", "t3/tables/t3_selection", "t3/tables/t3_tests",
                "t4/tables/t4_zeroshot", "t4/tables/t4_tests", "t4/tables/t4_notes"):
        f = results / f"{rel}.{ext}"
        if f.is_file():
            parts.append(f.read_text())
    return "\n\n".join(parts)


def hidden_embedding(head: torch.nn.Module, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of the head's last hidden layer."""
    from sklearn.manifold import TSNE
    with torch.no_grad():
        h = head.hidden(torch.as_tensor(X, dtype=torch.float32)).numpy()
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(h) - 1)).fit_transform(h)


def gradcam(backbone, head: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of the head's quality score w.r.t. a timm CNN's last feature map.

    x: (1, C, H, W) preprocessed image; returns an (h, w) map in [0, 1].
    """
    model = backbone.model
    with torch.enable_grad():
        fmap = model.forward_features(x).detach().requires_grad_(True)       # (1, K, h, w)
        score = head(model.forward_head(fmap, pre_logits=True))
        (g,) = torch.autograd.grad(score.sum(), fmap)
    w = g.mean((2, 3), keepdim=True)
    cam = torch.relu((w * fmap).sum(1))[0].detach().numpy()
    return cam / cam.max() if cam.max() > 0 else cam


def write_report(out_dir: str | Path, tables_md: str, claims_df: pd.DataFrame, tables_tex: str = "") -> Path:
    """report.md (claims + tables), claims.tex and tables.tex (every table's LaTeX, in order)."""
    out = Path(out_dir)
    text = ("# nriqa report\n\n## Claims on the data at hand\n\n" + claims_df.to_markdown(index=False)
            + "\n\n## Tables\n\n" + tables_md + "\n")
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "claims.tex", claims_df.to_latex(index=False, escape=True))
    atomic_write_text(out / "tables.tex", tables_tex)
    return out / "report.md"


def key_figures(p, out_dir: str | Path) -> dict[str, Path]:
    """Scatter of prediction vs MOS, t-SNE of the head's hidden layer and Grad-CAM, for the T1 head trained
    on split 0 of the last configured dataset with the first pretrained backbone."""
    from . import plots
    from .backbones import create_backbone
    from .data.manifest import load_dataset
    from .data.splits import load_splits
    from .features import build_transform, load_feature_set, load_image
    from .study import features_dir, is_control, jobs_from_splits, splits_path, train_config
    from .train import train_heads
    out = Path(out_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    d = p.data.datasets[-1]
    bname = next(b for b in p.features.backbones if not is_control(b))
    fs = load_feature_set(features_dir(d, bname))
    man = load_dataset(d, p.data.roots, decode=False)
    mos = man.table.set_index("image").loc[fs.images, "mos"].to_numpy()
    job = jobs_from_splits(fs.images, load_splits(splits_path(d)), seed_offset=p.train.seed * 1000)[0]
    res = train_heads(fs.features, mos, [job], train_config(p, p.t1.head))
    head = res.heads[0]
    te = res.predictions[res.predictions["part"] == "test"]
    paths = {"scatter": plots.save(plots.pred_vs_mos(te, f"{p.t1.head} head on {bname}, {d} split 0 (test)"),
                                   out / "pred_vs_mos.png")}
    xy = hidden_embedding(head, fs.features[job.test_idx], seed=p.stats.seed)
    paths["tsne"] = plots.save(plots.embedding_plot(xy, mos[job.test_idx], f"t-SNE of the head's hidden layer ({d} test)"),
                               out / "tsne_hidden.png")
    bb = create_backbone(bname, weights=p.features.weights.get(bname))
    if hasattr(bb.model, "forward_head") and bb.spec.pooling == "avg":
        tf = build_transform(bb.preprocess, "squash")
        order = np.argsort(mos[job.test_idx])
        pick = [job.test_idx[order[0]], job.test_idx[order[len(order) // 2]], job.test_idx[order[-1]]]
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(2, 3, figsize=(9, 6))
        for k, i in enumerate(pick):
            im = load_image(man.root / fs.images[i])
            x = tf(im)[None]
            cam = gradcam(bb, head, x)
            axes[0, k].imshow(im.resize((bb.preprocess.size, bb.preprocess.size)))
            axes[0, k].set_title(f"MOS {mos[i]:.2f}", fontsize=9)
            axes[1, k].imshow(cam, cmap="jet")
            for a in axes[:, k]:
                a.axis("off")
        fig.suptitle(f"Grad-CAM of the quality score ({bname}, {p.t1.head} head)")
        paths["gradcam"] = plots.save(fig, out / "gradcam.png")
    return paths
