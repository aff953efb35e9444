"""The GPU path of the smoke and paper profiles, checked on a CUDA machine in one short run (random weights: no
model hub is needed). Prints one line per measurement and writes them to ``--out``/gpu_check.json.

1. **pipeline**: the stage commands a user runs (`check`, `splits`, then `features` and `finetune` under
   ``torchrun --nproc_per_node <GPUs>``) on ``--images`` (CLIVE, P1's 1169 rows sampled to 40) with the paper
   profile's loaders (SigLIP2 so400m at 512, CLIP and DINOv2 through P1's transformers path), ``run.device: cuda``
   and P1's regime in bf16 (``finetune.p1_precision``); then the same fine-tuning once more without torchrun:
   the two predictions.csv must be equal (deterministic CUDA across processes and launchers).
2. **resume**: P1's regime in bf16 with LoRA dropout (the CUDA RNG draws its masks) killed by SIGKILL after its
   first checkpoint and resumed, against an uninterrupted run, bit for bit.
3. **speed**: per family of the paper profile at its own input size: extraction images/s (bf16 autocast, batch 16),
   the min cosine of bf16 vs fp32 features, and fine-tuning seconds per optimiser step (P1's 12-image windows of
   2-image micro-batches) for each regime, with peak memory; then the paper profile's GPU-hours from these
   measured times, beside nriqa_lib.estimate's FLOP-based estimate.
4. **fused** (``--parts fused``, issue 36): per family, P1's published recipe (p1_frozen, bf16, one shared
   backbone of fixed random weights) with k = 1, 3, 9, 27, 54 runs fused (``--fused-k``; nriqa_lib.training.fused):
   seconds per micro-step of the group, per training image per run, peak memory, under the deterministic settings;
   the k = 9 group run twice and compared bit for bit; then the paper profile's p1_frozen GPU-hours from the
   largest k's per-image time.

Usage (repository root, a CUDA machine): python scripts/gpu_check.py --images /data/clive --out /tmp/gpu
(``--device cpu --size 64`` runs the same code on a CPU: a dry run of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))          # nriqa_lib from this checkout, installed or not
PAPER = ["siglip2_so400m_p16_512_hf", "clip_vit_b16_hf", "dinov2_vitb14_hf", "dinov3_vitb16_hf", "pe_core_l14",
         "resnet152_hf"]
RESULTS: dict = {}
T0 = time.time()


def say(key: str, value, line: str) -> None:
    RESULTS[key] = value
    print(f"[{time.time() - T0:6.1f}s] {line}", flush=True)


def save(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=1, sort_keys=True, default=str) + "\n")


def sh(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[int, float]:
    t = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.call(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return rc, time.time() - t


# ---------------------------------------------------------------------------------------------------- 1. pipeline
def pipeline(a, out: Path) -> None:
    import pandas as pd
    import torch
    import yaml
    ws = Path(a.workspace)
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    for f in ("nriqa_lib", "data_manifests"):
        shutil.copytree(REPO / f, ws / f, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", "params.yaml", "params-smoke.yaml"):
        shutil.copy2(REPO / f, ws / f)
    p = yaml.safe_load((REPO / "params-smoke.yaml").read_text())
    gpus = torch.cuda.device_count() if a.device == "cuda" else 1
    p["data"].update(datasets=["clive"], roots={**p["data"]["roots"], "clive": str(Path(a.images).resolve())},
                     limit=40, manifests={"clive": "clive_p1"})
    p["splits"]["schemes"] = {"clive": "p1"}
    bbs = a.pipeline_backbones
    p["features"].update(backbones=bbs, image_size=a.size, jpeg_draft=0, threads=8, batch_size=16)
    p["train"].update(epochs=2, per_dataset={})
    p["t2"]["cross"] = []
    p["t4"]["clip_models"] = []
    p["t5"].update(backbones=["clip_vit_b16_hf"], datasets=["clive"])
    p["finetune"].update(regimes=["p1"], heads=["B_Gated"], p1_precision="bf16", backbones=[bbs[0]], max_splits=1)
    p["run"].update(device=a.device, amp="auto", workers=4, launcher=f"torchrun --nproc_per_node {gpus}")
    (ws / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ws), os.environ.get("PYTHONPATH", "")]))
    log = out / "pipeline.log"
    py = [sys.executable, "-m", "nriqa_lib.cli"]
    trun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "-m",
            "nriqa_lib.cli"]
    steps = [("check", py + ["check", "--stamp", "results/params.ok", "--weights", "results/weights.json",
                             "--data", "results/data"]),
             ("splits", py + ["splits", "--dataset", "clive"]),
             ("features (torchrun)", trun + ["features", "--dataset", "clive"]),
             ("finetune p1 bf16 (torchrun)", trun + ["finetune", "--dataset", "clive"])]
    for name, cmd in steps:
        rc, s = sh(cmd, ws, env, log)
        say(f"pipeline.{name}", {"rc": rc, "seconds": round(s, 1)}, f"pipeline {name}: exit {rc} in {s:.1f}s")
        if rc:
            print(log.read_text()[-3000:], flush=True)
            return
    ft = ws / "results/finetune/clive" / bbs[0] / "p1"
    first = (ft / "predictions.csv").read_bytes()
    run = json.loads((ft / "run.json").read_text())
    say("pipeline.run", run["run"], f"pipeline run.json: {json.dumps(run['run'], sort_keys=True)}; precision "
        f"{run['precision']}")
    for b in bbs:
        meta = json.loads((ws / "features/clive" / b / "meta.json").read_text())
        say(f"pipeline.features.{b}", {k: meta.get(k) for k in ("run", "shape", "dim") if k in meta},
            f"pipeline features {b}: {json.dumps({k: meta.get(k) for k in ('run', 'shape') if k in meta})}")
    for line in log.read_text().splitlines():
        if " img/s" in line or line.startswith("finetune "):
            print("    " + line.strip(), flush=True)
    shutil.rmtree(ws / "cache/finetune")
    shutil.rmtree(ws / "results/finetune")
    rc, s = sh(py + ["finetune", "--dataset", "clive"], ws, env, log)
    same = rc == 0 and (ft / "predictions.csv").read_bytes() == first
    df = pd.read_csv(ft / "predictions.csv") if rc == 0 else None
    say("pipeline.rerun_plain_python_equal", same,
        f"pipeline finetune again with plain python (exit {rc}, {s:.1f}s): predictions.csv "
        f"{'byte-identical' if same else 'DIFFERENT'} to the torchrun run; {0 if df is None else len(df)} rows, "
        f"finite {bool(df is not None and df['pred'].notna().all())}")


# ------------------------------------------------------------------------------------------------------ 2. resume
def _resume_run(name: str, folder: Path, ckpt: Path | None, device: str, size: int, kill: bool = False,
                precision: str = "bf16"):
    import numpy as np
    import torch

    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.core.device import set_deterministic
    from nriqa_lib.training.finetune import FinetuneConfig, finetune_split
    from nriqa_lib.training.trainer import HeadJob, TrainConfig
    dev = torch.device(device)
    set_deterministic(dev)
    paths = sorted(folder.glob("*.png"))
    mos = np.linspace(0.1, 0.9, len(paths))
    job = HeadJob(np.arange(12), np.zeros(0, np.int64), np.arange(12, 16), seed=3, tags={"split": 0})
    tcfg = TrainConfig(head="B_Gated", epochs=2, batch_size=12, lr=1e-4, micro_batch=2, accumulation="p1",
                       select_on="test", report_last=True)
    cfg = FinetuneConfig(mode="p1", epochs=2, lr_head=1e-4, micro_batch=2, batch_size=12, precision=precision,
                         lora_dropout=0.05)
    make = lambda: create_backbone(name, pretrained=False, image_size=size or None)   # noqa: E731

    def progress(msg: str) -> None:
        if kill and msg.startswith("epoch 2/") and ckpt is not None and ckpt.is_file():
            os.kill(os.getpid(), signal.SIGKILL)

    return finetune_split(make, make().preprocess, paths, mos, job, cfg, tcfg, ckpt=ckpt, device=dev,
                          progress=progress)


def resume(a, out: Path) -> None:
    import numpy as np
    from PIL import Image
    folder = Path(a.workspace + "-resume")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray((rng.random((200 + 8 * i, 240, 3)) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    for name in a.resume_families:
        t = time.time()
        ckpt = folder / f"{name}.pt"
        rc = subprocess.call([sys.executable, __file__, "--resume-child", name, str(folder), str(ckpt),
                              "--device", a.device, "--size", str(a.resume_size), "--precision", a.precision])
        if rc != -signal.SIGKILL or not ckpt.is_file():
            say(f"resume.{name}", f"child exit {rc}", f"resume {name}: the child was not killed after a checkpoint "
                f"(exit {rc})")
            continue
        r1, w1, w2 = (_resume_run(name, folder, c, a.device, a.resume_size, precision=a.precision)
                      for c in (ckpt, None, None))
        same = bool(np.array_equal(r1.predictions["pred"], w1.predictions["pred"])
                    and np.array_equal(r1.last_predictions["pred"], w1.last_predictions["pred"]))
        rep = bool(np.array_equal(w1.last_predictions["pred"], w2.last_predictions["pred"]))
        diff = float(np.abs(r1.last_predictions["pred"] - w1.last_predictions["pred"]).max())
        say(f"resume.{name}", {"resumed_equal": same, "repeat_equal": rep, "max_abs_diff": diff},
            f"resume {name} (p1 {a.precision}, LoRA dropout 0.05, {a.resume_size} px, {a.device}): killed after epoch 1 and "
            f"resumed {'= uninterrupted, bit for bit' if same else f'DIFFERS (max {diff:.2e})'}; two uninterrupted "
            f"runs {'equal' if rep else 'DIFFER'} ({time.time() - t:.0f}s)")
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------- sdpa
def sdpa(a, out: Path) -> None:
    """Each scaled-dot-product-attention backend's backward, twice on the same inputs (SigLIP2 so400m's shape in
    P1's micro-batch: 2 x 16 heads x 1024 tokens x 72, bf16): bit-identical gradients or not, warnings, time."""
    import warnings

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator(device=a.device).manual_seed(0)
    q, k, v = (torch.randn(2, 16, 1024, 72, device=a.device, dtype=torch.bfloat16, generator=g) for _ in range(3))
    go = torch.randn(2, 16, 1024, 72, device=a.device, dtype=torch.bfloat16, generator=g)
    for be in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
               SDPBackend.MATH):
        try:
            grads, msgs = [], set()
            for _ in range(3):
                x = [t.clone().requires_grad_(True) for t in (q, k, v)]
                with warnings.catch_warnings(record=True) as w, sdpa_kernel(be):
                    warnings.simplefilter("always")
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    torch.nn.functional.scaled_dot_product_attention(*x).backward(go)
                    torch.cuda.synchronize()
                    dt = time.perf_counter() - t
                msgs |= {str(m.message)[:60] for m in w}
                grads.append(torch.cat([t.grad.flatten() for t in x]).float())
            same = all(torch.equal(grads[0], gr) for gr in grads[1:])
            say(f"sdpa.{be.name}", {"bitwise_repeatable": same, "ms": dt * 1e3, "warnings": sorted(msgs)},
                f"sdpa {be.name}: backward x3 bit-identical {same}; {dt * 1e3:.2f} ms; warnings {sorted(msgs)}")
        except Exception as e:
            say(f"sdpa.{be.name}", repr(e)[:300], f"sdpa {be.name}: not available ({repr(e)[:120]})")


# ------------------------------------------------------------------------------------------------------- 3. speed
def speed(a, out: Path) -> None:
    import numpy as np
    import torch

    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.core.device import autocast, set_deterministic
    from nriqa_lib.estimate import meta_gflops
    from nriqa_lib.training.finetune import FinetuneConfig, finetune_split
    from nriqa_lib.training.trainer import HeadJob, TrainConfig
    dev = torch.device(a.device)
    set_deterministic(dev)
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    paths = sorted((Path(a.images) / "images").glob("*.*"))[:36]        # CLIVE's JPEGs and WebPs
    mos = np.linspace(0.1, 0.9, len(paths))
    job = HeadJob(np.arange(24), np.zeros(0, np.int64), np.arange(24, 36), seed=0, tags={"split": 0})
    for name in a.families:
        if time.time() - T0 > a.budget:
            say(f"speed.{name}", "skipped", f"speed {name}: skipped (the script's {a.budget}s budget is spent)")
            continue
        try:
            gf, s = meta_gflops(name, a.size or None)
            torch.manual_seed(0)
            bb = create_backbone(name, pretrained=False, image_size=a.size or None).to(dev).eval()
            x = torch.randn(16, 3, s, s, device=dev)
            with torch.inference_mode():
                f32 = bb(x).float()
                with autocast(dev, "bf16"):
                    for _ in range(2):
                        bf = bb(x).float()
                    sync()
                    t = time.perf_counter()
                    for _ in range(a.reps):
                        bb(x)
                    sync()
            ips = 16 * a.reps / (time.perf_counter() - t)
            cos = float(torch.nn.functional.cosine_similarity(f32, bf, dim=1).min())
            pp = bb.preprocess
            del bb, x, f32, bf
            row = {"gflops": gf, "size": s, "extract_img_s": ips, "extract_tflops": gf * ips / 1e3,
                   "bf16_vs_fp32_min_cosine": cos}
            say(f"speed.{name}.extract", row, f"speed {name} ({s} px, {gf:.1f} GFLOP/img): extraction {ips:.0f} "
                f"img/s bf16 batch 16 = {gf * ips / 1e3:.0f} TFLOP/s; bf16 vs fp32 features min cosine {cos:.5f}")
            regimes = ["p1", "p1_frozen", "lora", "full"] if name in a.all_regimes else ["p1"]
            for regime in regimes:
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                tcfg = TrainConfig(head="B_Gated", epochs=2, batch_size=12, lr=1e-4, micro_batch=2,
                                   accumulation="p1", select_on="test")
                cfg = FinetuneConfig(mode=regime, epochs=2, lr_head=1e-4, micro_batch=2, batch_size=12,
                                     precision=a.precision)
                make = lambda: create_backbone(name, pretrained=False, image_size=a.size or None)  # noqa: E731
                t, k = time.time(), 3 if regime in ("p1", "full") else 2     # estimate.py's k: no frozen-weight grads
                res = finetune_split(make, pp, paths, mos, job, cfg, tcfg, device=dev, amp="auto")
                mem = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else float("nan")
                ok = bool(np.isfinite(res.predictions["pred"]).all())
                r = {"step_s": res.step_seconds, "per_train_image_s": res.step_seconds / 12, "peak_gib": mem,
                     "finite": ok, "wall_s": time.time() - t,
                     "train_tflops": k * gf * 12 / res.step_seconds / 1e3}
                say(f"speed.{name}.{regime}", r, f"speed {name} {regime}: {res.step_seconds:.3f} s per step of 12 "
                    f"images (micro-batch 2) = {r['train_tflops']:.1f} TFLOP/s at k={k}; peak "
                    f"{mem:.1f} GiB; predictions finite {ok}; {time.time() - t:.0f}s with the builds")
        except Exception as e:          # one family's failure must not hide the others' numbers
            say(f"speed.{name}.error", repr(e)[:500], f"speed {name}: FAILED {repr(e)[:300]}")
        save(out)
    paper_hours()


def paper_hours(measured: dict | None = None, key: str = "paper_finetune_gpu_hours_measured",
                what: str = "measured step times") -> None:
    """The paper profile's fine-tuning hours from the measured step times (nriqa_lib.estimate.measured_hours)."""
    from nriqa_lib.core.params import load_params
    from nriqa_lib.estimate import measured_hours
    p = load_params(str(REPO / "params-paper.yaml"))
    tot: dict[str, float] = {}
    for row in measured_hours(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune,
                              RESULTS if measured is None else measured):
        if row["hours"] is not None:
            tot[row["regime"]] = tot.get(row["regime"], 0.0) + row["hours"]
    say(key, tot, f"paper profile fine-tuning from {what}: "
        + ", ".join(f"{r} {h:.1f} GPU-h" for r, h in tot.items()) + f" (total {sum(tot.values()):.1f}; a regime "
        "without its own time takes p1_frozen <- lora <- p1's)")


# ------------------------------------------------------------------------------------------------------- 4. fused
def fused(a, out: Path) -> None:
    import numpy as np
    import torch

    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.core.device import set_deterministic
    from nriqa_lib.training.finetune import FinetuneConfig
    from nriqa_lib.training.fused import RunSpec, finetune_group
    from nriqa_lib.training.trainer import HeadJob, TrainConfig
    dev = torch.device(a.device)
    set_deterministic(dev)
    cuda = dev.type == "cuda"
    paths = sorted((Path(a.images) / "images").glob("*.*"))[:36]
    mos = np.linspace(0.1, 0.9, len(paths))
    fastest: dict = {}
    for name in a.families:
        if time.time() - T0 > a.budget:
            say(f"fused.{name}", "skipped", f"fused {name}: skipped (the script's {a.budget}s budget is spent)")
            continue
        try:
            torch.manual_seed(0)
            ref = {k: v.clone() for k, v in create_backbone(name, pretrained=False,
                                                              image_size=a.size or None).state_dict().items()}

            def make(name=name, ref=ref):          # pretrained-like: the same weights in every run (one shared copy)
                m = create_backbone(name, pretrained=False, image_size=a.size or None)
                m.load_state_dict(ref)
                return m
            pp = make().preprocess

            def group(k):
                specs = []
                for r in range(k):
                    perm = np.random.default_rng(r).permutation(len(paths))
                    tcfg = TrainConfig(head="B_Gated", epochs=1, batch_size=12, lr=1e-4, micro_batch=2,
                                       accumulation="p1", select_on="test")
                    cfg = FinetuneConfig(mode="p1_frozen", epochs=1, lr_head=1e-4, micro_batch=2, batch_size=12,
                                         precision=a.precision)
                    specs.append(RunSpec(HeadJob(perm[:24], np.zeros(0, np.int64), perm[24:], seed=r), cfg, tcfg))
                lines = []
                res = finetune_group(make, pp, paths, mos, specs, fuse=k, device=dev, amp="auto", say=lines.append)
                return res, lines
            for k in a.fused_k:
                if time.time() - T0 > a.budget:
                    break
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                t = time.time()
                res, lines = group(k)
                mem = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else float("nan")
                step = float(np.median([r.step_seconds for r in res]))     # a window of 12 images, all k runs
                row = {"k": k, "window_s": step, "per_train_image_s": step / 12 / k, "peak_gib": mem,
                       "wall_s": time.time() - t, "said": lines[-3:]}
                if k == 9 and a.fused_repeat:
                    again, _ = group(k)
                    row["repeat_equal"] = all(x.predictions["pred"].equals(y.predictions["pred"])
                                              for x, y in zip(res, again))
                say(f"fused.{name}.k{k}", row, f"fused {name} p1_frozen {a.precision} k={k}: {step:.3f} s per "
                    f"12-image window of all {k} runs = {row['per_train_image_s'] * 1e3:.2f} ms per image per run; "
                    f"peak {mem:.1f} GiB; {row['wall_s']:.0f}s with the builds"
                    + (f"; repeat equal {row['repeat_equal']}" if "repeat_equal" in row else ""))
                fastest[name] = row
        except Exception as e:
            say(f"fused.{name}.error", repr(e)[:500], f"fused {name}: FAILED {repr(e)[:300]}")
        save(out)
    if fastest:
        base = json.loads((REPO / "docs/measured/gpu_check_h200_run1.json").read_text())
        m = {**base, **RESULTS}
        for name, row in fastest.items():
            m[f"speed.{name}.p1_frozen"] = {"per_train_image_s": row["per_train_image_s"]}
        paper_hours(m, "paper_finetune_gpu_hours_fused", "fused p1_frozen times (largest k that ran; other "
                    "regimes solo, as measured)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(REPO.parent / "shared/datasets/clive"))
    ap.add_argument("--out", default="/tmp/nriqa-gpu-out")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=0, help="input size (0: each backbone's own, as the paper profile)")
    ap.add_argument("--resume-size", type=int, default=224)
    ap.add_argument("--workspace", default="/tmp/nriqa-gpu")
    ap.add_argument("--families", nargs="*", default=PAPER)
    ap.add_argument("--pipeline-backbones", nargs="*", default=PAPER[:3],
                    help="the pipeline's features.backbones; the first is fine-tuned")
    ap.add_argument("--all-regimes", nargs="*", default=["siglip2_so400m_p16_512_hf", "clip_vit_b16_hf"])
    ap.add_argument("--resume-families", nargs="*", default=["clip_vit_b16_hf"])
    ap.add_argument("--precision", default="bf16", help="P1's regime's precision (fp32: a quick CPU dry run)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which speed skips families")
    ap.add_argument("--parts", nargs="*", default=["pipeline", "resume", "speed"],
                    help="pipeline resume speed sdpa fused")
    ap.add_argument("--fused-k", type=int, nargs="*", default=[1, 3, 9, 27, 54])
    ap.add_argument("--fused-repeat", type=int, default=1, help="run k=9 twice and compare (0: skip)")
    ap.add_argument("--resume-child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.resume_child:
        name, folder, ckpt = a.resume_child
        _resume_run(name, Path(folder), Path(ckpt), a.device, a.size, kill=True, precision=a.precision)
        return 3                                # never reached: the run kills itself after its first checkpoint
    import torch
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if shutil.which("nvidia-smi") else ""
    say("env", {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(),
                "bf16": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()), "nvidia_smi": smi},
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), {torch.cuda.device_count()} GPU(s): {smi}")
    for part in a.parts:
        try:
            {"pipeline": pipeline, "resume": resume, "speed": speed, "sdpa": sdpa, "fused": fused}[part](a, out)
        except Exception as e:
            import traceback
            traceback.print_exc()
            say(f"{part}.error", repr(e)[:500], f"{part}: FAILED {repr(e)[:300]}")
        save(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
