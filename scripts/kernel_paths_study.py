"""Is the whole default study the same under other CPU kernel paths? (issue 37: "the same tables on every CPU")

For each kernel-path profile below, a clone of HEAD (its DVC outputs checked out from this repository's DVC cache)
re-runs every stage after ``features`` (heads, cross, zero-shot, figures, fine-tuning, resolution, the tables'
notebooks and the report: ``dvc repro --force --single-item``) in a fresh process tree with the profile's
variables set, and compares each output's md5 in the clone's dvc.lock with the committed dvc.lock (the native
path); a directory that differs is listed file by file (from DVC's ``.dir`` manifests). ``features`` is left out
because its outputs are the input every profile shares; scripts/kernel_paths.py and tests/test_determinism.py
cover the features and the heads per single variable.

A profile sets the dispatch of every numerical library at once, as another CPU would: ATen's vector ISA,
MKL's code branch (conditional numerical reproducibility), oneDNN's ISA cap, numpy's SIMD dispatch and
OpenBLAS's core type (numpy's and scipy's BLAS).

    python scripts/kernel_paths_study.py [--profiles baseline avx2 avx512] [--json docs/measured/...json]

Needs a clean checkout whose dvc.lock is reproduced (``dvc status`` clean); takes ~10 min per profile here.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from kernel_paths import _cpu_model     # scripts/ is on sys.path when this runs as a script

ROOT = Path(__file__).resolve().parents[1]
# numpy >= 2.4's dispatch targets above its X86_V2 baseline; OpenBLAS core types: Prescott (SSE3, generic),
# Haswell (AVX2, what OpenBLAS picks on this AMD EPYC), SkylakeX (AVX-512, what it picks on an Intel Xeon)
PROFILES = {
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
                 "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Prescott"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "OPENBLAS_CORETYPE": "SkylakeX"},
}
SKIP = ("check", "synthetic", "splits@", "features@")     # the inputs every profile shares


def _outs(lock: dict) -> dict[str, dict]:
    return {o["path"]: o for st in lock["stages"].values() for o in st.get("outs", [])}


def _dir_files(cache: Path, md5: str) -> dict[str, str]:
    f = cache / "files" / "md5" / md5[:2] / md5[2:]
    return {e["relpath"]: e["md5"] for e in json.loads(f.read_text())} if f.is_file() else {}


def run_profile(name: str, env: dict[str, str], work: Path, stages: list[str], commit: str) -> dict:
    clone = work / name / ROOT.name
    clone.parent.mkdir(parents=True)
    if (ROOT.parent / "shared").exists():          # the default params read ../shared (CLIVE, labels)
        (clone.parent / "shared").symlink_to((ROOT.parent / "shared").resolve())
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)     # HEAD as it was at the start
    # DVC's cache objects are read-only and new ones get new names: hard links share them safely; cache/ (the
    # study's own content-addressed cache) is copied, so nothing here can touch this repository's files
    subprocess.run(["cp", "-al", str(ROOT / ".dvc" / "cache"), str(clone / ".dvc" / "cache")], check=True)
    if (ROOT / "cache").is_dir():
        shutil.copytree(ROOT / "cache", clone / "cache", symlinks=True)
    venv = {"PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    subprocess.run(["dvc", "checkout", "-q"], cwd=clone, env={**os.environ, **venv}, check=True)
    # the check stage's outputs are not cached (results/params.ok): run it, natively, as `dvc repro` would
    subprocess.run(["dvc", "repro", "-q", "--single-item", "check"], cwd=clone, env={**os.environ, **venv}, check=True,
                   stdout=subprocess.DEVNULL)
    times = {}
    for st in stages:
        t = time.time()
        r = subprocess.run(["dvc", "repro", "-q", "--force", "--single-item", st], cwd=clone,
                           env={**os.environ, **venv, **env}, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"kernel_paths_study: profile {name}, stage {st} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        times[st] = round(time.time() - t, 1)
        print(f"  {name}: {st} {times[st]} s", flush=True)
    # dvc.lock lists stages in no topological order (report before t5): a plain repro re-runs, under the same
    # profile, whatever a forced stage's changed output made stale (nothing, when every output is identical)
    r = subprocess.run(["dvc", "repro", "-q"], cwd=clone, env={**os.environ, **venv, **env}, capture_output=True,
                       text=True)
    if r.returncode:
        sys.exit(f"kernel_paths_study: profile {name}, the closing dvc repro failed:\n{r.stderr[-3000:]}")
    return {"times": times, "lock": yaml.safe_load((clone / "dvc.lock").read_text()), "cache": clone / ".dvc" / "cache"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--stages", nargs="+", default=None, help="only these stages (default: every stage after features)")
    ap.add_argument("--keep", default=None, help="work in this folder and keep the clones (default: a temporary one)")
    a = ap.parse_args()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                      text=True).stdout.strip():
        sys.exit("kernel_paths_study: commit first (the clones are of HEAD, compared with HEAD's dvc.lock)")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    ref = yaml.safe_load(subprocess.run(["git", "show", f"{head}:dvc.lock"], cwd=ROOT, capture_output=True,
                                        text=True, check=True).stdout)
    stages = a.stages or [s for s in ref["stages"] if not s.startswith(SKIP)]
    ref_outs, cache = _outs(ref), ROOT / ".dvc" / "cache"
    rows = []
    with tempfile.TemporaryDirectory(dir=a.keep) as tmp:
        for name in a.profiles:
            t = time.time()
            got = run_profile(name, PROFILES[name], Path(a.keep or tmp), stages, head)
            compared = {o["path"]: o for s in stages for o in got["lock"]["stages"][s].get("outs", [])}
            differ = {}
            for path, o in compared.items():
                if o["md5"] != ref_outs[path]["md5"]:
                    was, now = _dir_files(cache, ref_outs[path]["md5"]), _dir_files(got["cache"], o["md5"])
                    differ[path] = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
            rows.append({"profile": name, "env": PROFILES[name], "outputs_compared": len(compared),
                         "outputs_identical": len(compared) - len(differ), "differ": differ,
                         "stage_seconds": got["times"], "seconds": round(time.time() - t, 1)})
            print(f"{name}: {rows[-1]['outputs_identical']} of {len(compared)} outputs identical to the committed "
                  f"lock{'' if not differ else ': differ ' + json.dumps(differ)[:2000]} ({rows[-1]['seconds']} s)",
                  flush=True)
    doc = {"cpu": platform.machine(), "cpu_model": _cpu_model(), "commit": head, "reference": "HEAD's dvc.lock",
           "stages": stages, "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    sys.exit(1 if any(r["differ"] for r in rows) else 0)


if __name__ == "__main__":
    main()
