"""Stage ``features@<dataset>``: features/<dataset>/<backbone>/ for every backbone (content-addressed cache).

Under ``torchrun --nproc_per_node N -m nriqa_lib.cli features ...`` (``run.launcher``) the ranks share the
images (``extract_features``); rank 0 writes the outputs."""
from __future__ import annotations

import time

from .datasets import open_dataset

from .models import backbone
from ..backbones.registry import feature_sets
from ..core.paths import features_dir
from ..pipeline.spec import BACKBONE, D, ComputeStage


STAGE = ComputeStage(name="features", module=__name__, matrix=True, launched=True,
              params=("data.roots", "data.manifests", "data.limit", "data.limit_seed", "data.exif_transpose",
                      "features", "run"),
              desc="pooled features of every backbone, cached on its own key (cache/features)",
              deps=("data_manifests", "results/weights.json"), outs=(str(features_dir(D)),), options=(BACKBONE,),
              writes=("features", "cache/features"))


def run(p, dataset: str, backbones: list[str] | None = None) -> None:
    # the heavy imports (torch, CLIP, plots) here, not at the top: every CLI call imports every stage's module (the
    # registry), and a stage that needs none of them (splits, a notebook) starts ~3 s sooner (issue 34)
    from ..core import dist
    from ..core.device import resolve_device, run_info, set_deterministic
    from ..features.decode import decode_notes
    from ..extraction.extract import extract_many
    from ..features.sets import save_feature_set
    from ..core.paths import features_dir
    m = open_dataset(p, dataset, decode=True, pixels=True)        # validates files (existence, sha256, decoding) first
    dev = dist.init(resolve_device(p.run.device))
    set_deterministic(dev)
    if dist.is_main():
        print(decode_notes(m))
    # a random-init control also at its other seeds (features.control_inits; T4's magnitude cue resamples them)
    wanted = feature_sets(backbones or p.features.backbones, p.features.control_inits)
    names = [name for name, _, _ in wanted]
    models = [backbone(p, b, seed=s) for _, b, s in wanted]
    t = time.time()
    # one pass over the images for every backbone whose features are not cached (each image decoded once)
    sets = extract_many(models, m, test_time=p.features.test_time,
                        batch_size=p.features.batch_size, threads=p.features.threads,
                        chunk_size=p.features.chunk_size, progress=True, device=dev, amp=p.run.amp,
                        workers=p.run.workers, jpeg_draft=p.features.jpeg_draft)
    dt = time.time() - t
    if not dist.is_main():
        return
    for bname, fs in zip(names, sets):
        fs.meta["run"] = {**run_info(dev, p.run.amp, p.run.workers), "processes": dist.world()}
        save_feature_set(fs, features_dir(dataset, bname))
        print(f"{bname} on {dataset}: {fs.features.shape} (key {fs.key})")
    print(f"{len(names)} backbone(s) on {dataset} in {dt:.1f}s ({len(m.table) / max(dt, 1e-9):.1f} img/s for all of "
          f"them, cache hits included; {dev})")
