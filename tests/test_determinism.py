"""Results that hold on any CPU (issue 19): identical inputs give exact zeros by construction, and the tables
a run writes do not depend on the last bits of a BLAS reduction (rounded to TABLE_DIGITS significant digits).

The cross-kernel test runs the same computations under every OpenBLAS kernel this CPU can execute
(OPENBLAS_CORETYPE, set only in the child processes) and compares the bytes of what they write.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nriqa_lib.analysis import stats
from nriqa_lib.core.metrics import srcc_along
from nriqa_lib.reporting.export import export_table, round_sig, write_csv

REPO = Path(__file__).resolve().parents[1]


def _fake_predictions(seed: int = 3, J: int = 6, n: int = 60) -> pd.DataFrame:
    """Per-split test predictions of three backbones on one dataset (one overlapping random split each)."""
    g = np.random.default_rng(seed)
    y = g.random(n)
    rows = []
    for j in range(J):
        te = g.permutation(n)[: n // 4]
        for k, b in enumerate(("b0", "b1", "b2")):
            pred = y[te] + (0.3 + 0.1 * k) * g.normal(size=te.size)
            rows += [{"dataset": "d", "backbone": b, "split": j, "image": f"i{i}", "pred": p, "mos": y[i],
                      "part": "test"} for i, p in zip(te, pred)]
    return pd.DataFrame(rows)


def _write_tables(pred: pd.DataFrame, out: Path) -> dict[str, str]:
    """The T1 path on fake predictions: per-split metrics, design-aware summaries, pairwise tests, pooled
    verdicts; every file written, returned as name -> sha256."""
    from nriqa_lib.analysis.compare import compare, split_metrics, summarize_groups
    from nriqa_lib.analysis.design import Design
    from nriqa_lib.analysis.pooled import pooled
    des = {"d": Design("splits", 45, 15)}
    rows = split_metrics(pred, ["dataset", "backbone"])
    summ = summarize_groups(rows, pred, ["dataset", "backbone"], des, n_boot=200)
    tests = compare(rows, pred, ["dataset"], "backbone", None, des, ["dataset"], n_boot=200)
    pool = pooled(tests.assign(pair=tests["a"] + " - " + tests["b"]), ["pair"], des)
    export_table(tests, out, "tests")
    export_table(pool, out, "pooled")
    write_csv(rows, out / "rows.csv")
    write_csv(summ, out / "summary.csv")
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())}


def test_identical_inputs_give_exact_zero_in_every_paired_statistic(rng):
    y = rng.normal(size=257)
    A = y + rng.normal(size=(7, 257))
    for c in (1.0, 2.3):
        same = stats.two_level_bootstrap(A, y, A.copy(), n_boot=100, seed=1, head_inflation=c)
        assert same["value"] == 0.0 and same["p"] == 1.0 and same["ci_low"] == 0.0 == same["ci_high"]
    pb = stats.paired_bootstrap(A[0], A[0].copy(), y, srcc_along, n_boot=200, vectorized=True)
    assert pb["diff"] == 0.0 and pb["p"] == 1.0 and pb["ci_low"] == 0.0 == pb["ci_high"]
    nb = stats.nadeau_bengio(A[:, 0], A[:, 0].copy(), 80, 20)
    assert nb["t"] == 0.0 and nb["p"] == 1.0
    assert stats.wilcoxon(A[0], A[0].copy())["p"] == 1.0
    r = float(np.corrcoef(A[0], y)[0, 1])
    assert stats.williams_t(r, r, 0.7, 257)["p"] == 1.0


def test_two_level_bootstrap_unchanged_by_the_row_order_of_its_inputs(rng):
    """Correlations no longer come from a BLAS matrix-vector product: a head's SRCC does not depend on where
    its row sits, so swapping a and b exactly negates every replicate."""
    y = rng.normal(size=301)
    A, B = y + rng.normal(size=(5, 301)), y + 1.3 * rng.normal(size=(5, 301))
    ab = stats.two_level_bootstrap(A, y, B, n_boot=150, seed=4)
    ba = stats.two_level_bootstrap(B, y, A, n_boot=150, seed=4)
    assert ab["value"] == -ba["value"] and ab["p"] == ba["p"]
    # every replicate negated exactly; the percentiles only up to np.quantile's interpolation rounding
    assert ab["ci_low"] == pytest.approx(-ba["ci_high"], abs=1e-15)
    assert ab["ci_high"] == pytest.approx(-ba["ci_low"], abs=1e-15)


def test_round_sig_by_hand():
    df = pd.DataFrame({"x": [0.123456789, 1234567.89, -2.5e-9, np.nan, np.inf], "n": [1, 2, 3, 4, 5],
                       "s": ["a", "b", "c", "d", "e"]})
    r = round_sig(df)
    assert r["x"].tolist()[:3] == [0.123457, 1234570.0, -2.5e-09]
    assert np.isnan(r["x"][3]) and r["x"][4] == np.inf
    assert r["n"].dtype == df["n"].dtype and r["s"].tolist() == df["s"].tolist()


def test_tables_from_predictions_perturbed_by_one_ulp_are_byte_identical(tmp_path):
    pred = _fake_predictions()
    base = _write_tables(pred, tmp_path / "a")
    up = pred.assign(pred=np.nextafter(pred["pred"].to_numpy(), np.inf))
    down = pred.assign(pred=np.nextafter(pred["pred"].to_numpy(), -np.inf))
    assert _write_tables(up, tmp_path / "b") == base
    assert _write_tables(down, tmp_path / "c") == base
    # the rounding is what makes this hold: at full precision some value moves
    full = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert (full.select_dtypes(float).map(lambda v: len(repr(v)) <= 12 or not np.isfinite(v))).all().all()


# OpenBLAS kernels and the CPU flag each needs (lscpu's names), newest first; a kernel the CPU lacks would not run
KERNELS = {"SkylakeX": "avx512f", "Haswell": "avx2", "Zen": "avx2", "Sandybridge": "avx", "Prescott": "sse3"}
_RANK = {"SkylakeX": 3, "Haswell": 2, "Zen": 2, "Sandybridge": 1, "Prescott": 0}


def _kernels() -> list[str]:
    """The kernels this CPU runs. Where the machine already sets OPENBLAS_CORETYPE (some workplaces do, because
    an old OpenBLAS kernel crashes or miscomputes on that CPU), only kernels up to the preset one are used."""
    flags = _cpu_flags()
    ks = [k for k, f in KERNELS.items() if f in flags or (f == "sse3" and "pni" in flags)]
    preset = os.environ.get("OPENBLAS_CORETYPE", "")
    cap = next((r for k, r in _RANK.items() if k.lower() == preset.lower()), None)
    return [k for k in ks if cap is None or _RANK[k] <= cap] if preset else ks


def _kernel_env(kernel: str) -> dict:
    return {**os.environ, "OPENBLAS_CORETYPE": kernel}     # OPENBLAS_L2_SIZE, where the machine sets it, stays

_CHILD = r"""
import hashlib, json, sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_determinism import _fake_predictions, _write_tables
from threadpoolctl import threadpool_info
from nriqa_lib.analysis import stats
from nriqa_lib.core.metrics import srcc_along
y = np.random.default_rng(0).normal(size=300)
A = y + np.random.default_rng(1).normal(size=(10, 300))
tl = stats.two_level_bootstrap(A, y, A.copy(), n_boot=100)
pb = stats.paired_bootstrap(A[0], A[0].copy(), y, srcc_along, n_boot=100, vectorized=True)
with tempfile.TemporaryDirectory() as d:
    h = _write_tables(_fake_predictions(), Path(d))
cores = sorted({i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"})
print(json.dumps({"zero": [tl["value"], tl["p"], pb["diff"], pb["p"]], "tables": h, "cores": cores}))
"""


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_same_tables_and_exact_zeros_under_every_openblas_kernel_this_cpu_runs():
    kernels = _kernels()
    if len(kernels) < 2:
        pytest.skip(f"this CPU runs fewer than two of {sorted(KERNELS)}")
    out = {}
    for k in kernels:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).parent)], env=_kernel_env(k), capture_output=True,
                           text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0, f"{k}: {r.stderr[-2000:]}"
        out[k] = json.loads(r.stdout.strip().splitlines()[-1])
    for k, o in out.items():
        assert o["zero"] == [0.0, 1.0, 0.0, 1.0], (k, o["zero"])
        assert o["tables"] == out[kernels[0]]["tables"], f"tables differ between {kernels[0]} and {k}"
    # at least two different kernels really ran (Zen reuses Haswell's; otherwise this test would prove nothing)
    assert len({tuple(o["cores"]) for o in out.values()}) >= 2, {k: o["cores"] for k, o in out.items()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_torch_cpu_kernels_are_pinned_to_avx2_where_the_cpu_has_it():
    """`import nriqa_lib` pins ATen, MKL and oneDNN to their AVX2 paths (before torch computes anything), so an
    AVX-512 machine trains and extracts as an AVX2 one does; a value the user exported wins."""
    code = ("import os, nriqa_lib, torch; print(torch.backends.cpu.get_cpu_capability(), "
            "os.environ.get('MKL_CBWR'), os.environ.get('ONEDNN_MAX_CPU_ISA'))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "NRIQA_NATIVE_KERNELS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO,
                         timeout=120).stdout.split()
    flags = _cpu_flags()
    if "avx2" in flags and "fma" in flags:
        assert out == ["AVX2", "AVX2", "AVX2"]
    else:
        assert out[1:] == ["None", "None"]
    mine = subprocess.run([sys.executable, "-c", code], env={**env, "MKL_CBWR": "COMPATIBLE"}, capture_output=True,
                          text=True, cwd=REPO, timeout=120).stdout.split()
    assert mine[1] == "COMPATIBLE"
    off = subprocess.run([sys.executable, "-c", code], env={**env, "NRIQA_NATIVE_KERNELS": "1"},
                         capture_output=True, text=True, cwd=REPO, timeout=120).stdout.split()
    assert off[1:] == ["None", "None"]


def test_tsne_layout_is_the_same_under_every_openblas_kernel():
    """The figures stage's t-SNE: distances without BLAS and a seeded random start give the same embedding
    under every OpenBLAS kernel the CPU runs (with sklearn's defaults three kernels gave three layouts)."""
    kernels = _kernels()
    if len(kernels) < 2:
        pytest.skip("fewer than two OpenBLAS kernels on this CPU")
    code = ("import hashlib, numpy as np, torch, nriqa_lib\n"
            "from nriqa_lib.heads.mlp import build_head\nfrom nriqa_lib.training.explain import hidden_embedding\n"
            "torch.manual_seed(0); head = build_head('B', 64, hidden=32)\n"
            "X = np.random.default_rng(0).normal(size=(120, 64)).astype(np.float32)\n"
            "print(hashlib.sha256(hidden_embedding(head, X, seed=0).tobytes()).hexdigest())")
    hashes = set()
    for k in kernels:
        r = subprocess.run([sys.executable, "-c", code], env=_kernel_env(k), capture_output=True, text=True,
                           cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        hashes.add(r.stdout.strip())
    assert len(hashes) == 1


def test_a_bootstrap_p_below_resolution_reads_as_a_bound_in_markdown_and_latex(tmp_path):
    df = pd.DataFrame({"claim": ["x", "y"], "p": [0.001, 0.25], "p_below": [True, False]})
    export_table(df, tmp_path, "t")
    md, tex = (tmp_path / "t.md").read_text(), (tmp_path / "t.tex").read_text()
    assert "< 0.001" in md and "0.25" in md and "0.0000" not in md
    assert "< 0.001" in tex
    assert pd.read_csv(tmp_path / "t.csv")["p"].tolist() == [0.001, 0.25]


_HEADS_CODE = """
import sys, hashlib, numpy as np, torch
import nriqa_lib
from nriqa_lib.training import trainer as th
torch.set_num_threads(2)
for portable in (True, False):
    w = th.init_head(th.TrainConfig(head="B", hidden=512), 1280, 7, portable=portable).state_dict()
    print("init_portable" if portable else "init_torch",
          hashlib.sha256(b"".join(v.numpy().tobytes() for v in w.values())).hexdigest())
g = np.random.default_rng(0)
X = np.maximum(g.normal(size=(400, 96)), 0)           # pooled-activation-like: non-negative, half zeros
y = np.tanh(X[:, :8].sum(1) / 4 - 1) + 0.3 * g.normal(size=400)
jobs = [th.HeadJob(*np.split(g.permutation(400), [280, 320]), seed=s) for s in range(3)]
for dtype in ("float64", "float32"):
    th.HEAD_DTYPE = getattr(torch, dtype)
    out = []
    for head in ("B", "B_Sig"):
        r = th.train_heads(X, y, jobs, th.TrainConfig(head=head, hidden=64, epochs=8, batch_size=32, lr=3e-3))
        out.append(r.predictions.to_csv(index=False, float_format="%.7g") + str(r.best_epoch))
        np.save(sys.argv[1] + dtype + head, r.predictions["pred"].to_numpy())
    print(dtype, hashlib.sha256("".join(out).encode()).hexdigest())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MKL's branches are x86 (Linux CI)")
def test_head_training_is_the_same_under_every_blas_and_dnn_branch(tmp_path):
    """Issue 37: train_heads (float64) writes the same predictions (at the stage's %.7g) and selects the same epochs
    under MKL's, oneDNN's and OpenBLAS's other code paths and ATen's scalar kernels (each set in a child process),
    and the raw predictions agree within 1e-12. Negative controls: the same runs in float32 differ under MKL's
    compatible branch (here by 1.6e-6, float64 5.6e-16; on the study's CLIVE heads float32 flipped an epoch and moved
    predictions by 0.23: scripts/kernel_paths.py, docs/measured/kernel_paths_amd_epyc.json); torch's own init
    (``init_head(portable=False)``) gives other initial weights under ATen's scalar kernels, which moved a CLIVE ReLU
    head's predictions by 3.8e-3 before the heads' init became portable."""
    variants = {"native": {}, "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"}, "onednn_sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
                "openblas_haswell": {"OPENBLAS_CORETYPE": "Haswell"}, "aten_scalar": {"ATEN_CPU_CAPABILITY": "default"}}
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")}

    def run(name):
        pre = str(tmp_path / f"{name}_")
        out = subprocess.run([sys.executable, "-c", _HEADS_CODE, pre], env={**env, **variants[name]},
                             capture_output=True, text=True, cwd=REPO, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        digests = dict(line.split() for line in out.stdout.splitlines() if line.startswith(("float", "init")))
        raw = {dt: np.concatenate([np.load(f"{pre}{dt}{h}.npy") for h in ("B", "B_Sig")]) for dt in digests
               if dt.startswith("float")}
        return digests, raw

    ref, ref_raw = run("native")
    for name in list(variants)[1:]:
        digest, raw = run(name)
        assert digest["float64"] == ref["float64"], f"float64 heads differ under {name}"
        assert digest["init_portable"] == ref["init_portable"], name
        if name == "aten_scalar" and {"avx2", "fma"} <= _cpu_flags():       # torch's FMA kernel vs its scalar one
            assert digest["init_torch"] != ref["init_torch"], "torch's init agrees under ATen's scalar kernels here"
        assert np.abs(raw["float64"] - ref_raw["float64"]).max() < 1e-12, name
        if name == "mkl_compatible" and "avx2" in _cpu_flags():   # MKL's AVX2 branch (the pin) vs another
            assert np.abs(raw["float32"] - ref_raw["float32"]).max() > 0, \
                "float32 agrees under MKL's branches here: the control shows nothing"


def _sorts_without_a_kind(tree) -> list[int]:
    import ast
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("sort_values", "argsort", "sort_index") and not any(k.arg == "kind" for k in n.keywords)]


def test_every_sort_in_the_library_orders_ties_the_same_on_every_cpu():
    """numpy's default quicksort is dispatched by SIMD level (x86-simd-sort), and its AVX2 and baseline paths
    put equal keys in different orders (measured: the synthetic set's 208 MOS with 7 ties, `np.argsort` under
    NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 ..." vs native: different tie orders, so the data overview's sample grid
    showed another image: scripts/kernel_paths_study.py). So every sort_values / argsort /
    sort_index in nriqa_lib names its kind (stable: ties keep their input order)."""
    import ast
    bad = {str(f.relative_to(REPO)): lines for f in sorted((REPO / "nriqa_lib").rglob("*.py"))
           if (lines := _sorts_without_a_kind(ast.parse(f.read_text())))}
    assert not bad, f"sorts without kind=\"stable\" (file: lines): {bad}"
    assert _sorts_without_a_kind(ast.parse("df.sort_values('x')\nnp.argsort(a)\nnp.argsort(a, kind='stable')")) == [1, 2]


def test_numpy_tie_order_differs_by_simd_dispatch_and_stable_does_not():
    """The measurement behind the rule above, kept as a test: if numpy ever orders ties alike, the rule may go."""
    code = ("import numpy as np, hashlib; a = np.repeat(np.arange(40.0), 5)[np.random.default_rng(0).permutation(200)];"
            "print(hashlib.md5(np.argsort(a).tobytes()).hexdigest(), hashlib.md5(np.argsort(a, kind='stable').tobytes()).hexdigest())")
    run = lambda env: subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                                     text=True, check=True).stdout.split()
    native, scalar = run({}), run({"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"})
    assert native[1] == scalar[1]
    if native[0] == scalar[0]:
        pytest.skip("this CPU's numpy sorts without SIMD either way (no AVX2): the tie orders agree here")
