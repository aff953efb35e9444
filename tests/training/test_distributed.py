"""Issue 12: torchrun on CPU (gloo, 2 processes) against one process: extraction bit-identical, a killed rank
leaves nothing a rerun trusts, DDP fine-tuning within tolerance; the launcher param; DVC's queue."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from conftest import REPO, make_image_dataset, needs_shared, write_manifest

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env(tmp_path):
    return {**os.environ, "PYTHONPATH": str(REPO), "NRIQA_MANIFEST_DIR": str(tmp_path / "m"), "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1"}


def _toy(tmp_path, n=23):
    df = make_image_dataset(tmp_path / "root", n=n, size=(48, 40))
    write_manifest(tmp_path / "m", "toy", df)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(datasets=["toy"], roots={**raw["data"]["roots"], "toy": str(tmp_path / "root")})
    raw["features"].update(backbones=["random_tf_efficientnet_lite0"], chunk_size=3, batch_size=2, threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "params.yaml"


def _run(cmd, cwd, env, ok=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_torchrun_extraction_equals_one_process_through_the_cli(tmp_path):
    """`torchrun --nproc_per_node 2 -m nriqa_lib.cli features` (run.launcher) writes the features one process
    writes, bit for bit."""
    params = _toy(tmp_path)
    env = _env(tmp_path)
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
    cli = ["-m", "nriqa_lib.cli", "--params", str(params), "features", "--dataset", "toy"]
    _run([sys.executable, *cli], tmp_path / "one", env)
    r = _run([*TORCHRUN, *cli], tmp_path / "two", env)
    a = np.load(tmp_path / "one" / "features/toy/random_tf_efficientnet_lite0/features.npy")
    b = np.load(tmp_path / "two" / "features/toy/random_tf_efficientnet_lite0/features.npy")
    assert a.shape == (23, 1280)
    np.testing.assert_array_equal(a, b)
    meta = json.loads((tmp_path / "two" / "features/toy/random_tf_efficientnet_lite0/meta.json").read_text())
    assert meta["run"]["processes"] == 2 and r.stdout.count("img/s for all of them") == 1   # rank 0 reports, writes


WORKER = textwrap.dedent("""
    import os, sys, numpy as np, torch
    from nriqa_lib.core import dist
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.extraction.extract import extract_features
    torch.set_num_threads(1)
    dist.init(torch.device("cpu"))
    m = load_dataset("toy", {"toy": sys.argv[1]}, hash_cache=None)
    stop = int(sys.argv[3]) if len(sys.argv) > 3 and dist.rank() == 1 else None
    fs = extract_features(create_backbone("random_tf_efficientnet_lite0"), m, batch_size=2, chunk_size=3,
                          cache_dir=sys.argv[2], progress=False, max_chunks=stop)
    if dist.is_main():
        np.save(os.path.join(sys.argv[2], "out.npy"), fs.features)
""")


def test_a_killed_rank_leaves_nothing_trusted_and_the_rerun_completes(tmp_path):
    _toy(tmp_path)
    env = _env(tmp_path)
    (tmp_path / "w.py").write_text(WORKER)
    cache = tmp_path / "cache"
    r = _run([*TORCHRUN, str(tmp_path / "w.py"), str(tmp_path / "root"), str(cache), "1"], tmp_path, env, ok=False)
    assert r.returncode != 0                                   # rank 1 died after one of its chunks
    entry = next(p for p in cache.iterdir() if p.is_dir())
    assert not (entry / "features.npy").exists() and not (cache / "out.npy").exists()
    done = sorted(p.name for p in (entry / "chunks_3").glob("chunk_*.npy"))
    assert 0 < len(done) < 8                                   # some chunks written atomically, not all
    _run([*TORCHRUN, str(tmp_path / "w.py"), str(tmp_path / "root"), str(cache)], tmp_path, env)
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.data.manifest import load_dataset
    from nriqa_lib.extraction.extract import extract_features
    import torch
    torch.set_num_threads(1)
    one = extract_features(create_backbone("random_tf_efficientnet_lite0"),
                           load_dataset("toy", {"toy": str(tmp_path / "root")}, manifest_dir=tmp_path / "m",
                                        hash_cache=None),
                           batch_size=2, chunk_size=3, cache_dir=tmp_path / "single", progress=False)
    np.testing.assert_array_equal(np.load(cache / "out.npy"), one.features)
    assert not (entry / "chunks_3").exists()                   # merged and cleaned by rank 0


FT_WORKER = textwrap.dedent("""
    import json, sys, numpy as np, timm, torch
    from PIL import Image
    from pathlib import Path
    from torch import nn
    from nriqa_lib.core import dist
    from nriqa_lib.backbones.registry import Preprocess
    from nriqa_lib.training.finetune import FinetuneConfig, finetune_split
    from nriqa_lib.training.trainer import HeadJob, TrainConfig
    torch.set_num_threads(1)
    dist.init(torch.device("cpu"))
    out = Path(sys.argv[1])
    paths = sorted(out.glob("img/*.png"))
    mos = np.linspace(0, 1, len(paths))

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, embed_dim=32,
                                           num_heads=2, img_size=32, num_classes=0)
            self.dim = 32

        def forward(self, x):
            return self.model(x)

    job = HeadJob(np.arange(0, 16), np.arange(16, 20), np.arange(20, 26), seed=3)
    tcfg = TrainConfig(epochs=3, batch_size=12, lr=1e-3, hidden=8, micro_batch=2)
    cfg = FinetuneConfig(mode=sys.argv[2], epochs=3, lr_head=1e-3, lr_backbone=1e-4, micro_batch=2, batch_size=12,
                         lora_dropout=0.0, precision="fp32")
    res = finetune_split(Tiny, Preprocess(32, (0.5,) * 3, (0.5,) * 3), paths, mos, job, cfg, tcfg)
    if dist.is_main():
        (out / f"res_{sys.argv[3]}.json").write_text(json.dumps({"best": res.best_epoch,
            "pred": res.predictions["pred"].tolist(), "hist": res.history}))
""")


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_ddp_finetuning_on_two_processes_matches_one(tmp_path, mode):
    """Global batch 12 = 6 micro-batches of 2, shared 3 + 3 by two gloo ranks: same selected epoch, predictions
    equal up to floating-point reduction order (tolerance 1e-4; LoRA dropout 0 so both runs draw nothing)."""
    from PIL import Image
    (tmp_path / "img").mkdir()
    g = np.random.default_rng(0)
    for i in range(26):
        Image.fromarray((g.random((40, 40, 3)) * 255 * (i + 1) / 26).astype(np.uint8)).save(tmp_path / f"img/{i:02d}.png")
    (tmp_path / "ft.py").write_text(FT_WORKER)
    env = _env(tmp_path)
    _run([sys.executable, str(tmp_path / "ft.py"), str(tmp_path), mode, "1"], tmp_path, env)
    _run([*TORCHRUN, str(tmp_path / "ft.py"), str(tmp_path), mode, "2"], tmp_path, env)
    one, two = (json.loads((tmp_path / f"res_{k}.json").read_text()) for k in ("1", "2"))
    assert one["best"] == two["best"]
    np.testing.assert_allclose(one["pred"], two["pred"], atol=1e-4)
    assert [h["epoch"] for h in two["hist"]] == [0, 1, 2]


def test_stages_that_scale_out_start_with_the_launcher_param():
    from nriqa_lib.core.config import ConfigError
    from nriqa_lib.core.params import load_params
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert dvc["features"]["cmd"].startswith("${run.launcher} -m nriqa_lib.cli features")
    assert dvc["finetune"]["cmd"].startswith("${run.launcher} -m nriqa_lib.cli finetune")
    assert dvc["heads"]["cmd"].startswith("python -m")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["run"]["launcher"] = "mpirun -n 2"
    f = REPO / ".pytest_cache" / "launcher.yaml"
    f.parent.mkdir(exist_ok=True)
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="run.launcher='mpirun -n 2'; use python, torchrun"):
        load_params(f)


def test_workspace_paths_resolve_from_the_users_repository(tmp_path):
    """Inside DVC's experiment copy (<repo>/.dvc/tmp/exps/...), relative roots that are not in the copy and the
    caches resolve from the user's repository."""
    from nriqa_lib.data.manifest import resolve_root
    from nriqa_lib.core.workspace import cache_dir, origin_root
    repo = tmp_path / "repo"
    ws = repo / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc"
    (ws / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "shared" / "clive").mkdir(parents=True)
    assert origin_root(ws) == repo and origin_root(repo) is None
    assert resolve_root("clive", {"clive": "../shared/clive"}, base=ws) == tmp_path / "shared" / "clive"
    assert resolve_root("synthetic", {"synthetic": "data/synthetic"}, base=ws) == ws / "data" / "synthetic"
    cwd = os.getcwd()
    try:
        os.chdir(ws)
        assert cache_dir("features") == repo / "cache" / "features"
        os.chdir(repo)
        assert cache_dir("features") == __import__("pathlib").Path("cache/features")
    finally:
        os.chdir(cwd)


@needs_shared
def test_dvc_queue_runs_two_experiments_in_its_own_workspaces(tmp_path):
    """docs/paper_profile.md's sweep recipe: two experiments queued with -S and run by `dvc queue start`; each runs in DVC's
    temporary copy (.dvc/tmp/exps/...), where the relative ../shared roots must still resolve, and both
    results appear in `dvc exp show` (a fresh copy without a DVC cache: dvc.lock left out, as after a clone
    without `dvc pull`)."""
    import time
    sys.path.insert(0, str(REPO / "scripts"))
    from smoke import copy_tree
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    repo = tmp_path / "repo"
    copy_tree(repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    _run([*git, "rm", "-q", "dvc.lock"], repo, os.environ)
    _run([*git, "commit", "-q", "-m", "no lock"], repo, os.environ)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NRIQA_ROOT")}
    env.update(PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}", HF_HUB_OFFLINE="1")
    dvc = [str(REPO / ".venv" / "bin" / "dvc")] if (REPO / ".venv" / "bin" / "dvc").exists() else ["dvc"]
    for n in (100, 150):        # (20 images leave CLIVE's published splits < 3 val images: refused at splits)
        _run([*dvc, "exp", "run", "--queue", "-n", f"lim{n}", "-S", f"data.limit={n}", "splits@clive"], repo, env)
    _run([*dvc, "queue", "start", "-j", "1"], repo, env)
    t0 = time.time()
    while time.time() - t0 < 400:
        st = _run([*dvc, "queue", "status"], repo, env).stdout
        if "Queued" not in st and "Running" not in st:
            break
        time.sleep(3)
    assert st.count("Success") == 2, st
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], repo, env).stdout)
    revs = {r["name"]: r["data"] for b in shown for e in (b.get("experiments") or []) for r in e["revs"]}
    assert {"lim100", "lim150"} <= set(revs)
    assert revs["lim100"]["outs"]["splits/clive.csv"]["hash"] != revs["lim150"]["outs"]["splits/clive.csv"]["hash"]
    import pandas as pd
    for n in (100, 150):                    # each experiment's splits/clive.csv, read from the DVC cache
        h = revs[f"lim{n}"]["outs"]["splits/clive.csv"]["hash"]
        sp = pd.read_csv(repo / ".dvc" / "cache" / "files" / "md5" / h[:2] / h[2:])
        assert (sp.groupby("split")["image"].nunique() == n).all()


def test_slurm_recipe_builds_one_torchrun_per_node_with_slurms_rendezvous(tmp_path):
    """scripts/slurm/paper.sbatch with stand-in scontrol and dvc (no cluster here): the experiment it starts
    has the paper profile's overrides and a launcher whose rendezvous comes from SLURM's variables, and that
    params file passes the checks."""
    from dvc.utils.hydra import apply_overrides

    from nriqa_lib.core.params import load_params
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a\\ngpu-b\\n'\n")
    (stub / "dvc").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'dvc_args.txt'}\n")
    for f in stub.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "SLURM_JOB_NODELIST": "gpu-[a-b]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "77", "GPUS_PER_NODE": "8"}
    _run(["bash", str(REPO / "scripts" / "slurm" / "paper.sbatch")], REPO, env)
    args = (tmp_path / "dvc_args.txt").read_text().splitlines()
    assert args[:4] == ["exp", "run", "-n", "paper-77"]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
    launcher = [s for s in sets if s.startswith("++run.launcher=")]
    assert launcher == ["++run.launcher='srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 torchrun "
                        "--nnodes=2 --nproc_per_node=8 --rdzv_id=77 --rdzv_backend=c10d "
                        "--rdzv_endpoint=gpu-a:29500'"]
    assert "++train.select_on=test" in sets
    f = tmp_path / "params.yaml"
    f.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(f), sets)
    p = load_params(f)
    assert p.run.launcher.startswith("srun ") and p.train.select_on == "test"


def test_a_torchrun_launcher_survives_dvcs_override_syntax(tmp_path):
    """`cli profile` with run.launcher 'torchrun --nproc_per_node=8' (spaces, '='): DVC's own override
    function gives back exactly that string."""
    from dvc.utils.hydra import apply_overrides

    from nriqa_lib.pipeline.profiles import overrides
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["run"]["launcher"] = "torchrun --nproc_per_node=8 --max-restarts=0"
    (tmp_path / "prof.yaml").write_text(yaml.safe_dump(raw))
    f = tmp_path / "params.yaml"
    f.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(f), overrides(REPO / "params.yaml", tmp_path / "prof.yaml"))
    assert yaml.safe_load(f.read_text())["run"]["launcher"] == "torchrun --nproc_per_node=8 --max-restarts=0"


@pytest.mark.parametrize("launcher", ["python -c 'import os; os.system(\"touch x\")'; python", "python; rm -rf data",
                                      "torchrun $(touch x)", "python `touch x`", "python > out", "python | tee x",
                                      "torchrun --nproc_per_node 8 && python", "python\ntouch x", "srun *",
                                      "python -c \"print(1)\""])
def test_a_launcher_that_a_shell_would_read_as_more_than_words_is_refused(launcher):
    """Issue 37 S1: run.launcher was checked on its first word only, and DVC runs the stage command through a
    shell: ``python -c '<code>'; python`` passed ``check`` and ran the code. Now every word must be plain (no
    quote, ;, |, &, $, backtick, redirection or glob) and the program one of python/torchrun/srun."""
    from nriqa_lib.core.config import Run
    with pytest.raises(ValueError, match="plain words"):      # ConfigError, as pydantic reports it
        Run(launcher=launcher)


def test_the_documented_launchers_pass():
    from nriqa_lib.core.config import Run
    for ok in ("python", "python3", "torchrun --nproc_per_node 8", "torchrun --nproc_per_node=8",
               "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 torchrun --nnodes=2 --nproc_per_node=8 "
               "--rdzv_id=77 --rdzv_backend=c10d --rdzv_endpoint=gpu-a:29500"):
        assert Run(launcher=ok).launcher == ok
