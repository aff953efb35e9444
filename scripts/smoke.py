"""`make smoke` (and CI): the smoke profile, params-smoke.yaml (random weights: checks the code path, not
results), run with the command a user runs for the paper profile, `python -m nriqa_lib.cli profile NAME FILE`
(= `dvc exp run -S ...`), in a throw-away git copy of the working tree (.smoke/, git-ignored), then its outputs
checked: every backbone family extracted, P1 splits, cross-dataset, T3, T4 with CLIP-IQA and MA-CLIP, LoRA and
full fine-tuning, the report, and the random-weights label on every table. Then a fine-tuning of every backbone
family (and library) is killed (SIGKILL) after its first checkpoint and resumed: the resumed run must equal an
uninterrupted one to the last bit (:func:`resume_every_family`). The two halves are independent and run side by
side (the profile in a child process, the resume check here, one thread each of its fine-tunings), so the smoke
takes about as long as the longer half; each step prints its time.

Usage: python scripts/smoke.py [--profile params-smoke.yaml] [--keep] [--resume-only]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
LABEL = "random weights: checks the code path, not results"


def copy_tree(dst: Path) -> None:
    """Tracked + untracked-not-ignored files (what `git status` shows), as a fresh one-commit repository."""
    if dst.exists():
        shutil.rmtree(dst)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file() and not f.startswith(".smoke/"):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    git = ["git", "-c", "user.name=smoke", "-c", "user.email=smoke@localhost", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "smoke workspace"]):
        subprocess.run(git + cmd, cwd=dst, check=True)


# one backbone per family, the libraries and LoRA placements mixed: open_clip's MHA (CLIP), open_clip's timm trunk
# with fused qkv (SigLIP2), transformers' query/key (DINOv2, P1's loader), timm RoPE (DINOv3), timm EVA (PE),
# transformers' conv ResNet (P1's loader), timm conv (EfficientNet-Lite); P1's regime (adapters + every weight),
# 64 px, 8 images, 2 epochs. Measured on 2 cores: 150 s for these 7 alone (13 entries, every library of each: 11 min)
RESUME_FAMILIES = ["clip_vit_b16", "siglip2_vit_b16", "dinov2_vitb14_hf", "dinov3_vitb16", "pe_core_b16",
                   "resnet152_hf", "tf_efficientnet_lite0"]


def _resume_run(name: str, folder: Path, ckpt: Path | None, kill_after_first: bool = False):
    """finetune_split of backbone ``name`` (random weights, 64 px) on the 8 images in ``folder``; with
    ``kill_after_first`` the process SIGKILLs itself once the first epoch's checkpoint is on disk."""
    import numpy as np
    import torch

    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.training.finetune import FinetuneConfig, finetune_split
    from nriqa_lib.training.trainer import HeadJob, TrainConfig
    torch.set_num_threads(1)            # the profile's stages run beside it on the other core (and their own)
    paths = sorted(folder.glob("*.png"))
    mos = np.linspace(0.1, 0.9, len(paths))
    job = HeadJob(np.arange(6), np.zeros(0, np.int64), np.arange(6, 8), seed=3, tags={"split": 0})
    tcfg = TrainConfig(head="B_Gated", epochs=2, batch_size=4, lr=1e-4, micro_batch=2, accumulation="p1",
                       select_on="test", report_last=True)
    cfg = FinetuneConfig(mode="p1", epochs=2, lr_head=1e-4, micro_batch=2, batch_size=4, precision="fp32")
    make = lambda: create_backbone(name, pretrained=False, image_size=64)   # noqa: E731

    def progress(msg: str) -> None:
        if kill_after_first and msg.startswith("epoch 2/") and ckpt is not None and ckpt.is_file():
            os.kill(os.getpid(), 9)          # after epoch 1's checkpoint, before epoch 2's

    return finetune_split(make, make().preprocess, paths, mos, job, cfg, tcfg, ckpt=ckpt, progress=progress)


def resume_every_family(ws: Path) -> list[str]:
    """Kill each family's fine-tuning (a child process, SIGKILL after its first checkpoint), resume it here, and
    compare with an uninterrupted run: the problems (empty = every family resumed to the same bits)."""
    import numpy as np
    from PIL import Image
    folder = ws / "resume" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((48 + 8 * i, 80, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    bad = []
    for name in RESUME_FAMILIES:
        t0 = time.time()
        ckpt = ws / "resume" / f"{name}.pt"
        rc = subprocess.call([sys.executable, __file__, "--resume-child", name, str(folder), str(ckpt)])
        if rc != -9 or not ckpt.is_file():
            bad.append(f"resume {name}: the child was not killed after a checkpoint (exit {rc})")
            continue
        resumed = _resume_run(name, folder, ckpt)
        whole = _resume_run(name, folder, None)
        same = (np.array_equal(resumed.predictions["pred"], whole.predictions["pred"])
                and np.array_equal(resumed.last_predictions["pred"], whole.last_predictions["pred"])
                and [h["epoch"] for h in resumed.history] == [0, 1])
        print(f"  resume {name}: killed after epoch 1, resumed {'= uninterrupted' if same else 'DIFFERS'} "
              f"({time.time() - t0:.0f}s)", flush=True)
        if not same:
            bad.append(f"resume {name}: resumed predictions differ from an uninterrupted run")
        ckpt.unlink(missing_ok=True)         # P1's regime checkpoints every weight + Adam: up to 1.1 GB each
    shutil.rmtree(ws / "resume", ignore_errors=True)
    return bad


def check(ws: Path, prof: dict) -> list[str]:
    """What the smoke run must have produced; returns the problems (empty = pass)."""
    bad = []
    res = ws / "results"
    datasets, backbones = prof["data"]["datasets"], prof["features"]["backbones"]
    for d in datasets:
        for b in backbones:
            if not (ws / "features" / d / b / "features.npy").is_file():
                bad.append(f"features/{d}/{b} missing")
        sp = pd.read_csv(ws / "splits" / f"{d}.csv")
        if set(sp["part"]) != {"train", "test"} or sp["split"].nunique() != 3:
            bad.append(f"splits/{d}.csv is not P1's 3 x 80/20")
        if sp.groupby("split").size().max() != prof["data"]["limit"]:
            bad.append(f"splits/{d}.csv does not hold data.limit images per split")
    from nriqa_lib.tables.registry import registry as tables
    folders = [t.folder for t in tables() if t.metrics]           # every declared table (T1..T6 today)
    for t in folders:
        for md in sorted((res / t / "tables").glob("*.md")):
            if LABEL not in md.read_text():
                bad.append(f"{md.relative_to(ws)} lacks the random-weights label")
    report = res / "report" / "report.md"
    if not report.is_file() or LABEL not in report.read_text():
        bad.append("results/report/report.md missing or unlabelled")
    pv = res / "report" / "published_vs_reproduced.csv"
    if not pv.is_file():
        bad.append("results/report/published_vs_reproduced.csv missing")
    else:       # the random CLIP RN50 ran CLIP-IQA and MA-CLIP on CLIVE: P2's two CLIVE cells have a number and a CI
        pv = pd.read_csv(pv)
        p2 = pv[(pv["work"] == "P2") & (pv["dataset"] == "clive")]
        if len(p2) != 2 or p2["study"].isna().any() or p2["ci_low"].isna().any():
            bad.append("published_vs_reproduced: P2's CLIVE cells have no study number (T4's clip_rn50 rows)")
    t4 = pd.read_csv(res / "t4" / "tables" / "t4_zeroshot.csv")
    if not t4.astype(str).apply(lambda c: c.str.contains("CLIP-IQA")).any().any():
        bad.append("T4 has no CLIP-IQA row (the random CLIP did not run)")
    if not t4.astype(str).apply(lambda c: c.str.contains("MA-CLIP")).any().any():
        bad.append("T4 has no MA-CLIP row")
    if not (res / "t2" / "tables" / "t2_cross.md").is_file():
        bad.append("T2 cross-dataset table missing")
    t6 = res / "t6" / "tables" / "t6_regimes.csv"
    cols = set(pd.read_csv(t6).columns) if t6.is_file() else set()
    for r in ("frozen", *prof["finetune"]["regimes"]):      # P1 as published (p1_frozen) beside P1 as released (p1)
        if r not in cols:
            bad.append(f"T6 has no {r} column")
    for f in ("t6/tables/t6_epochs.csv", "t6/tables/t6_epoch_curves.csv", "t6/figures/t6_epochs.png"):
        if not (res / f).is_file():
            bad.append(f"results/{f} missing (T6's per-epoch curves)")
    for f in ("t1/tables/t1_backbones_last_epoch.csv", "t6/tables/t6_regimes_last_epoch.csv"):
        if not (res / f).is_file():
            bad.append(f"results/{f} missing (train.report_last: the last epoch, as P1's code writes)")
    ft = prof["finetune"]
    for d in datasets:
        for b in ft["backbones"]:
            for r in ft["regimes"]:
                for name in ("predictions.csv", "predictions_last.csv"):
                    f = res / "finetune" / d / b / r / name
                    if not f.is_file():
                        bad.append(f"{f.relative_to(ws)} missing")
    t5 = res / "t5" / "tables" / "t5_resolution.csv"
    for pol in prof["t5"]["policies"]:
        if not t5.is_file() or pol not in t5.read_text():
            bad.append(f"T5 has no {pol} column")
    for nb in folders:
        if not list((res / nb).glob("*.html")):
            bad.append(f"results/{nb}: no rendered notebook")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="params-smoke.yaml")
    ap.add_argument("--keep", action="store_true", help="keep .smoke/ after a pass (it is always kept on failure)")
    ap.add_argument("--resume-only", action="store_true", help="only the kill-and-resume check of every family")
    ap.add_argument("--resume-child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.resume_child:
        name, folder, ckpt = a.resume_child
        _resume_run(name, Path(folder), Path(ckpt), kill_after_first=True)
        return 3                                 # never reached: the run kills itself after its first checkpoint
    if a.resume_only:
        ws = REPO / ".smoke" / "resume-only"
        bad = resume_every_family(ws)
        for b in bad:
            print("smoke: " + b, file=sys.stderr)
        return 1 if bad else 0
    prof = yaml.safe_load((REPO / a.profile).read_text())
    ws = REPO / ".smoke"
    t0 = time.time()
    copy_tree(ws)
    # stage commands run `python -m nriqa_lib.cli`: the interpreter running this script (the venv) comes first
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    # relative data roots name folders beside *this* checkout (../shared); the copy lives one level deeper
    for name, root in prof["data"]["roots"].items():
        if root.startswith(".."):
            env.setdefault(f"NRIQA_ROOT_{name.upper()}", str((REPO / root).resolve()))
    cmd = [sys.executable, "-m", "nriqa_lib.cli", "profile", "smoke", a.profile]
    print("smoke:", " ".join(cmd), f"(in {ws})", flush=True)
    log = ws / "smoke.log"
    ended: list[float] = []
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ws, env=env, stdout=fh, stderr=subprocess.STDOUT)
        def wait_for_profile() -> None:     # when the profile ended, while the resume check may still run
            proc.wait()
            ended.append(time.time())

        waiter = threading.Thread(target=wait_for_profile, daemon=True)
        waiter.start()
        try:            # meanwhile, beside the profile (its own folder: DVC's workspace stays as the profile left it)
            t = time.time()
            resumed = resume_every_family(REPO / ".smoke-resume")
            print(f"smoke: kill-and-resume of {len(RESUME_FAMILIES)} families took {time.time() - t:.0f}s", flush=True)
        finally:
            waiter.join()
            shutil.rmtree(REPO / ".smoke-resume", ignore_errors=True)
    rc = proc.returncode
    print(f"smoke: the profile (copy + dvc exp run) took {ended[0] - t0:.0f}s", flush=True)
    text = log.read_text()
    for line in text.splitlines():  # images/s per backbone, fine-tuning steps, and each stage's time (issue 34)
        if " img/s" in line or line.startswith(("finetune ", "nriqa: stage ")):
            print("  " + line)
    for b in resumed:
        print("smoke: " + b, file=sys.stderr)
    if rc != 0:
        print(text[-6000:])
        print(f"smoke: FAILED (exit {rc}); workspace kept in {ws}", file=sys.stderr)
        return 1
    checked = check(ws, prof)
    for b in checked:                    # (the resume check's problems are printed above)
        print("smoke: " + b, file=sys.stderr)
    bad = checked + resumed
    print(f"smoke: {'FAILED' if bad else 'passed'} in {time.time() - t0:.0f}s")
    if not bad and not a.keep:
        shutil.rmtree(ws)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
