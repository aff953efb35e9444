"""Issue 37: kill -9 in the middle of every compute stage (and of a notebook stage), and a write that fails for want of
space, on a toy study run through the CLI. Each must leave the outputs of the previous run intact (every file
byte-equal to it: no half-written file, nothing removed), and a plain rerun must finish with exactly those outputs
and no leftover of the killed run (a stale temp file in a DVC directory output changes its hash).

The kill is real (SIGKILL, which skips every ``finally``), at a deterministic point: just before the stage renames
its first output into place, when its work is done and a temp file exists (an earlier kill leaves less behind; a
later one, the same outputs as the rerun's). The full disk is real for the kernel: the stage runs under RLIMIT_FSIZE
(every write past the limit fails with EFBIG, as ENOSPC on a full disk would), set below the size of the stage's
largest output, for the three kinds of writer (the feature cache, atomic_path's files, a notebook's kernel); and,
where root may mount one, the heads stage on a 1 MiB tmpfs filled up to its last pages (ENOSPC)."""
import os
import resource
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_splits_files, make_tree

pytestmark = pytest.mark.xdist_group("kill")     # one worker builds the toy study (scripts/test.sh)

# the CLI under a rename counter: the k-th rename into the workspace SIGKILLs the process before it happens
KILLER = r"""
import os, runpy, signal, sys
k, count_file, root = int(sys.argv[1]), sys.argv[2], os.path.realpath(os.getcwd())
real, n = os.replace, [0]
def replace(src, dst, *a, **kw):
    if os.path.realpath(os.fspath(dst)).startswith(root + os.sep):
        n[0] += 1
        with open(count_file, "w") as f:
            f.write(str(n[0]))
        if n[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **kw)
os.replace = replace
sys.argv = ["nriqa_lib.cli", *sys.argv[3:]]
runpy.run_module("nriqa_lib.cli", run_name="__main__", alter_sys=True)
"""

DATASET = "toyb"
SKIP = {"finetune": "killed mid-epoch and resumed per family by scripts/smoke.py (CI), tests/training/test_finetune.py and "
                    "tests/training/test_fused.py"}
EXTRA = {"features": ["cache/features"]}     # written besides the DVC outputs
FULL_DISK = {"features", "heads", "t1"}


def _stages():
    """(name, CLI arguments, outputs) of every compute stage of the registry but SKIP's, and one notebook stage for
    all eight (they share run_notebook)."""
    from nriqa_lib.pipeline.registry import registry
    out = []
    for st in registry().values():
        if st.name in SKIP or (st.is_notebook and st.name != "t1"):
            continue
        cmd = st.command().replace("${item.dataset}", DATASET)
        cmd = cmd.replace(f"--tag {st.tag}", "--tag kill") if st.is_notebook else cmd
        args = shlex.split(cmd)[3:]               # what dvc.yaml runs, after '<launcher> -m nriqa_lib.cli'
        paths = [next(iter(o)) if isinstance(o, dict) else o for o in st.outputs()]
        if st.is_notebook:
            paths = [o.replace(f"__{st.tag}", "__kill") for o in paths]
        out.append((st.name, args, [o.replace("${item.dataset}", DATASET) for o in paths] + EXTRA.get(st.name, [])))
    return out


STAGES = _stages()


def _snapshot(ws: Path, outs) -> dict[str, bytes]:
    files = {}
    for o in outs:
        p = ws / o
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else []):
            files[str(f.relative_to(ws))] = f.read_bytes()
    return files


def _cli(ws: Path, args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "NRIQA_MANIFEST_DIR": str(ws / "m"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """A toy study (two datasets, made-up features) through every stage once, in process: the 'old' outputs. (Session
    scope, and nothing of the process changed once built: xdist may run other modules between this file's tests.)"""
    from nriqa_lib import cli
    with pytest.MonkeyPatch.context() as mp:
        ws, p = make_tree(tmp_path_factory.mktemp("kill"), mp)
        p.data.datasets = [DATASET, "toya"]
        p.t2.cross = [[DATASET, "toya"]]
        p.t4.clip_models = []
        p.t5.policies, p.t5.heads = ["squash", "center_crop"], ["ridge"]
        p.features.image_size = 32
        p.finetune.backbones = []
        (ws / "params.yaml").write_text(yaml.safe_dump(p.model_dump()))
        shutil.copytree(REPO / "notebooks", ws / "notebooks")
        shutil.copytree(REPO / "data_manifests", ws / "data_manifests")
        make_splits_files(p, lambda d: "random")
        for stage in ("features", "heads"):        # the other dataset (cross and the tables read both)
            assert cli.main([stage, "--dataset", "toya"]) == 0
        counts, real = {}, os.replace

        def counting(src, dst, *a, **kw):          # the renames of each stage's outputs into place
            counts[name] = counts.get(name, 0) + str(Path(dst).resolve()).startswith(str(ws.resolve()))
            return real(src, dst, *a, **kw)
        mp.setattr(os, "replace", counting)
        for name, args, outs in STAGES:
            assert cli.main(args) == 0, name
        mp.setattr(os, "replace", real)
    yield ws, counts


@pytest.mark.parametrize("name,args,outs", STAGES, ids=[s[0] for s in STAGES])
def test_a_killed_or_disk_full_stage_leaves_the_old_outputs_and_a_rerun_finishes(study, name, args, outs, tmp_path):
    ws, counts = study
    old = _snapshot(ws, outs)
    assert old, f"{name} wrote nothing to check"
    assert counts.get(name, 0) >= 1, f"{name} renamed no output into place (not written atomically?)"
    k = 1                       # after the stage's work, before its first output is in place (a temp file exists)
    r = _cli(ws, ["-c", KILLER, str(k), str(tmp_path / "count"), *args])
    assert r.returncode == -9, f"{name} was not killed at rename {k}: rc {r.returncode} {r.stderr[-2000:]}"
    after_kill = _snapshot(ws, outs)
    for f, b in old.items():
        assert after_kill.get(f) == b, f"{name}: {f} changed or vanished under kill -9"
    extra = sorted(set(after_kill) - set(old))
    assert all(Path(f).name.startswith(".") for f in extra), f"{name}: {extra} appeared under kill -9"

    # a write past RLIMIT_FSIZE fails in the kernel (EFBIG), as a full disk's ENOSPC would: one line, exit 2 (for the
    # three writers: the feature cache, atomic_path's CSVs, a notebook's kernel; the other stages write as heads does)
    if name not in FULL_DISK:
        return _rerun_equals(ws, name, args, outs, old)
    limit = max(len(b) for b in old.values()) // 2
    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    r = _cli(ws, ["-m", "nriqa_lib.cli", *args], preexec_fn=small_disk)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(err) == 1 and ("File too large" in err[0] or "written" in err[0]), \
        f"{name} under a {limit}-byte file limit: rc {r.returncode}, {r.stderr[-2000:]}"
    after_full = _snapshot(ws, outs)
    for f, b in old.items():
        assert after_full.get(f) == b, f"{name}: {f} changed or vanished on a full disk"

    _rerun_equals(ws, name, args, outs, old)


def _rerun_equals(ws: Path, name: str, args, outs, old: dict[str, bytes]) -> None:
    """The rerun finishes with the same outputs, and the killed run's temp files are gone."""
    from nriqa_lib import cli
    cwd = os.getcwd()
    try:
        os.chdir(ws)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NRIQA_MANIFEST_DIR", str(ws / "m"))
            assert cli.main(args) == 0
    finally:
        os.chdir(cwd)
    assert _snapshot(ws, outs) == old, \
        f"{name}: the rerun's outputs differ from the first run's (or leftovers)"


def test_a_full_tmpfs_fails_in_one_line_and_keeps_the_old_output(study, tmp_path):
    """ENOSPC from a real filesystem: results/heads/<dataset> on a 1 MiB tmpfs with the old outputs and a ballast
    that leaves 8 KiB free (root only: the mount)."""
    ws, _ = study
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE case above runs everywhere)")
    out = ws / "results" / "heads" / DATASET
    old = _snapshot(ws, [f"results/heads/{DATASET}"])
    keep = tmp_path / "keep"
    shutil.copytree(out, keep)
    mnt = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)], capture_output=True, text=True)
    if mnt.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mnt.stderr.strip()}")
    try:
        shutil.copytree(keep, out, dirs_exist_ok=True)
        free = shutil.disk_usage(out).free
        (out / ".ballast").write_bytes(b"\0" * (free - 8192))
        r = _cli(ws, ["-m", "nriqa_lib.cli", "heads", "--dataset", DATASET])
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and len(err) == 1 and "No space left on device" in err[0], r.stderr[-2000:]
        (out / ".ballast").unlink()
        now = _snapshot(ws, [f"results/heads/{DATASET}"])
        assert now == old, "a full disk changed the old outputs (or left a temp file)"
    finally:
        subprocess.run(["umount", str(out)], check=True)
