"""`make smoke` (and CI): the smoke profile, params-smoke.yaml (random weights: checks the code path, not
results), run with the command a user runs for the paper profile, `python -m nriqa_lib.cli profile NAME FILE`
(= `dvc exp run -S ...`), in a throw-away git copy of the working tree (.smoke/, git-ignored), then its outputs
checked: every backbone family extracted, P1 splits, cross-dataset, T3, T4 with CLIP-IQA and MA-CLIP, LoRA and
full fine-tuning, the report, and the random-weights label on every table.

Usage: python scripts/smoke.py [--profile params-smoke.yaml] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
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
    for t in ("t1", "t2", "t3", "t4", "t5", "t6"):
        for md in sorted((res / t / "tables").glob("*.md")):
            if LABEL not in md.read_text():
                bad.append(f"{md.relative_to(ws)} lacks the random-weights label")
    report = res / "report" / "report.md"
    if not report.is_file() or LABEL not in report.read_text():
        bad.append("results/report/report.md missing or unlabelled")
    t4 = pd.read_csv(res / "t4" / "tables" / "t4_zeroshot.csv")
    if not t4.astype(str).apply(lambda c: c.str.contains("CLIP-IQA")).any().any():
        bad.append("T4 has no CLIP-IQA row (the random CLIP did not run)")
    if not t4.astype(str).apply(lambda c: c.str.contains("MA-CLIP")).any().any():
        bad.append("T4 has no MA-CLIP row")
    if not (res / "t2" / "tables" / "t2_cross.md").is_file():
        bad.append("T2 cross-dataset table missing")
    t6 = (res / "t6" / "tables" / "t6_regimes.csv").read_text() if (res / "t6" / "tables" / "t6_regimes.csv").is_file() else ""
    for r in ("frozen", "p1", "lora", "full"):
        if r not in t6:
            bad.append(f"T6 has no {r} column")
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
    for nb in ("t1", "t2", "t3", "t4", "t5", "t6"):
        if not list((res / nb).glob("*.html")):
            bad.append(f"results/{nb}: no rendered notebook")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="params-smoke.yaml")
    ap.add_argument("--keep", action="store_true", help="keep .smoke/ after a pass (it is always kept on failure)")
    a = ap.parse_args()
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
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=ws, env=env, stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    for line in text.splitlines():          # the numbers users ask for: images/s per backbone, fine-tuning step
        if " img/s" in line or line.startswith("finetune "):
            print("  " + line)
    if rc != 0:
        print(text[-6000:])
        print(f"smoke: FAILED (exit {rc}); workspace kept in {ws}", file=sys.stderr)
        return 1
    bad = check(ws, prof)
    for b in bad:
        print("smoke: " + b, file=sys.stderr)
    print(f"smoke: {'FAILED' if bad else 'passed'} in {time.time() - t0:.0f}s")
    if not bad and not a.keep:
        shutil.rmtree(ws)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
