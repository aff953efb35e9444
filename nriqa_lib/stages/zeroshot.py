"""Stage ``zeroshot@<dataset>``: every zero-shot score per image (the magnitude cue on every backbone's
features; CLIP-IQA, MA-CLIP and the ablation grid where CLIP weights exist): results/zeroshot/<dataset>/."""
from __future__ import annotations

from .datasets import open_dataset
from ..backbones.registry import feature_sets
from ..core.paths import features_dir, zeroshot_dir
from ..pipeline.spec import D, ComputeStage


STAGE = ComputeStage(name="zeroshot", module=__name__, matrix=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "data.exif_transpose",
                      "features.backbones", "features.control_inits", "features.weights", "features.pretrained",
                      "t4"),
              desc="magnitude cue on every backbone; CLIP-IQA / MA-CLIP where weights exist",
              deps=("data_manifests", str(features_dir(D)), "results/weights.json"), outs=(str(zeroshot_dir(D)),),
              writes=("results/zeroshot", "cache/maclip"))


def run(p, dataset: str) -> None:
    # the heavy imports (torch, CLIP, plots) here, not at the top: every CLI call imports every stage's module (the
    # registry), and a stage that needs none of them (splits, a notebook) starts ~3 s sooner (issue 34)
    from ..features.sets import load_feature_set
    from ..core.io import atomic_path
    from ..core.paths import features_dir, zeroshot_dir
    from ..zeroshot.clip import dataset_scores
    man = open_dataset(p, dataset, pixels=True)
    feats = {}
    # a control's other initialisations after it (features.control_inits)
    for bb, _, _ in feature_sets(p.features.backbones, p.features.control_inits):
        fs = load_feature_set(features_dir(dataset, bb))
        pos = {im: i for i, im in enumerate(fs.images)}
        feats[bb] = fs.features[[pos[im] for im in man.table["image"]]]
    scores, notes = dataset_scores(man, feats, p.t4.clip_models, dict(p.features.weights), p.t4,
                                   pretrained=p.features.pretrained)
    out = zeroshot_dir(dataset)
    for name, df in (("scores.csv", scores), ("notes.csv", notes)):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False, float_format="%.8g", lineterminator="\n")
    print(f"zeroshot on {dataset}: {scores.groupby(['source', 'score']).ngroups} scores; "
          f"{len(notes)} CLIP model(s) not run")
