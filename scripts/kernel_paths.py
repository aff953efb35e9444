"""Are the trained heads the same under every CPU kernel path this machine can select? (issue 37)

Runs the heads stage's own ``run_heads`` on the cached features of the default study (``dvc repro`` first) once per
kernel path, each in a fresh process with one variable set (ATen's vector ISA, MKL's conditional numerical
reproducibility, oneDNN's ISA cap, OpenBLAS's core type), in the heads' dtype (float64) and, for contrast, in
float32; compares what the stage writes (predictions.csv at %.7g) byte for byte, the selected epochs, and the raw
predictions. Prints a table and writes JSON (``--json``: e.g. docs/measured/kernel_paths_<cpu>.json).

    python scripts/kernel_paths.py [--dataset clive] [--backbone tf_efficientnet_lite0] [--heads B sigmoid B_Sig ridge]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "native": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "OPENBLAS_CORETYPE=Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
}


def worker(a: argparse.Namespace) -> None:
    """One kernel path: run_heads as the heads stage calls it, written as the stage writes it, plus raw .npy."""
    import numpy as np
    import torch
    from nriqa_lib.core.params import load_params
    from nriqa_lib.core.paths import features_dir, splits_path
    from nriqa_lib.core.paths import load_splits
    from nriqa_lib.features.sets import load_feature_set
    from nriqa_lib.stages.datasets import open_dataset
    from nriqa_lib.training import trainer as th
    from nriqa_lib.training.protocol import mos_of, run_heads, save_heads
    th.HEAD_DTYPE = getattr(torch, a.dtype)
    p = load_params("params.yaml")
    torch.set_num_threads(p.features.threads)
    fs = load_feature_set(features_dir(a.dataset, a.backbone))
    pred, shares = run_heads(fs, mos_of(open_dataset(p, a.dataset), fs.images), load_splits(splits_path(a.dataset)),
                             a.heads, p.train, p.t3, a.dataset)
    out = Path(a.out)
    save_heads(pred, shares, out)
    np.save(out / "pred.npy", pred["pred"].to_numpy(np.float64))
    (out / "capability.txt").write_text(torch.backends.cpu.get_cpu_capability())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="clive")
    ap.add_argument("--backbone", default="tf_efficientnet_lite0")
    ap.add_argument("--heads", nargs="+", default=["B", "sigmoid", "B_Sig", "ridge"])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    import numpy as np
    import pandas as pd
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in a.dtypes:
            ref = None
            for name, env in VARIANTS.items():
                out = Path(tmp) / dtype / name.replace("=", "_")
                t = time.time()
                subprocess.run([sys.executable, __file__, "--worker", "--dtype", dtype, "--out", str(out),
                                "--dataset", a.dataset, "--backbone", a.backbone, "--heads", *a.heads],
                               env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
                csv, raw = (out / "predictions.csv").read_bytes(), np.load(out / "pred.npy")
                ep = pd.read_csv(out / "predictions.csv").groupby(["head", "split"])["best_epoch"].first()
                ref = ref or (csv, raw, ep)
                rows.append({"dtype": dtype, "kernel_path": name,
                             "aten_capability": (out / "capability.txt").read_text(),
                             "predictions_csv_identical": csv == ref[0],
                             "max_abs_pred_diff": float(np.abs(raw - ref[1]).max()),
                             "epochs_flipped": int((ep != ref[2]).sum()), "head_splits": len(ep),
                             "seconds": round(time.time() - t, 1)})
                print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    doc = {"cpu": platform.processor() or platform.machine(), "cpu_model": _cpu_model(), "dataset": a.dataset,
           "backbone": a.backbone, "heads": a.heads, "reference": "native", "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    bad = [r for r in rows if r["dtype"] == "float64" and not r["predictions_csv_identical"]]
    sys.exit(1 if bad else 0)


def _cpu_model() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


if __name__ == "__main__":
    main()
