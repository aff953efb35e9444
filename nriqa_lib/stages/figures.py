"""Stage ``figures``: what a trained head looks at, for the report: prediction vs MOS, t-SNE of the hidden
layer, Grad-CAM, for the T1 head trained on split 0 of the last configured dataset with the first pretrained
backbone (results/figures/)."""
from __future__ import annotations

from .datasets import open_dataset

from .models import backbone
from ..core.paths import features_dir, figures_dir, splits_path
from ..pipeline.spec import ComputeStage


STAGE = ComputeStage(name="figures", module=__name__,
              params=("data.datasets", "data.roots", "data.manifests", "data.limit", "data.limit_seed",
                      "data.exif_transpose", "features.backbones", "features.weights", "features.pretrained",
                      "features.image_size", "train", "t1.head", "t3", "stats.seed"),
              desc="scatter, t-SNE and Grad-CAM of one trained head, for the report",
              deps=("data_manifests", str(features_dir()), str(splits_path("").parent)),
              outs=(str(figures_dir()),), writes=(str(figures_dir()),))


def run(p) -> dict:
    # the heavy imports (torch, CLIP, plots) here, not at the top: every CLI call imports every stage's module (the
    # registry), and a stage that needs none of them (splits, a notebook) starts ~3 s sooner (issue 34)
    import numpy as np
    from ..backbones.registry import pretrained
    from ..core.paths import load_splits
    from ..training.explain import gradcam, hidden_embedding
    from ..features.transforms import build_transform
    from ..features.sets import load_feature_set
    from ..features.decode import load_image
    from ..core.paths import features_dir, figures_dir, splits_path
    from ..training.protocol import jobs_from_splits
    from ..reporting import plots
    from ..training.trainer import TrainConfig
    from ..training.trainer import train_heads
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    d = p.data.datasets[-1]
    bname = pretrained(p.features.backbones)[0]
    fs = load_feature_set(features_dir(d, bname))
    man = open_dataset(p, d, pixels=True)
    mos = man.table.set_index("image").loc[fs.images, "mos"].to_numpy()
    job = jobs_from_splits(fs.images, load_splits(splits_path(d)), seed_offset=p.train.seed * 1000)[0]
    res = train_heads(fs.features, mos, [job], TrainConfig.from_params(p.train, p.t1.head, p.t3, d))
    head = res.heads[0]
    te = res.predictions[res.predictions["part"] == "test"]
    paths = {"scatter": plots.save(plots.pred_vs_mos(te, f"{p.t1.head} head on {bname}, {d} split 0 (test)"),
                                   out / "pred_vs_mos.png")}
    xy = hidden_embedding(head, fs.features[job.test_idx], seed=p.stats.seed)
    paths["tsne"] = plots.save(plots.embedding_plot(xy, mos[job.test_idx], f"t-SNE of the head's hidden layer ({d} test)"),
                               out / "tsne_hidden.png")
    bb = backbone(p, bname)
    if hasattr(bb.model, "forward_head") and bb.spec.pooling == "avg":
        tf = build_transform(bb.preprocess, "squash")
        order = np.argsort(mos[job.test_idx], kind="stable")   # ties in the same order on every CPU
        pick = [job.test_idx[order[0]], job.test_idx[order[len(order) // 2]], job.test_idx[order[-1]]]
        cams = []
        for i in pick:
            im = load_image(man.root / fs.images[i], exif=man.exif_transpose)
            cams.append((im.resize((bb.preprocess.size, bb.preprocess.size)), gradcam(bb, head, tf(im)[None]),
                         f"MOS {mos[i]:.2f}"))
        paths["gradcam"] = plots.save(plots.gradcam_grid(cams, f"Grad-CAM of the quality score ({bname}, "
                                                               f"{p.t1.head} head)"), out / "gradcam.png")
    print(f"figures: {', '.join(str(v) for v in paths.values())}")
    return paths
