"""CI check of the pipeline's outputs: every declared table/render exists, and the numbers are sane."""
import json
import sys
from pathlib import Path

import pandas as pd

from nriqa_lib.core.config import ConfigError
from nriqa_lib.core.params import load_params
from nriqa_lib.tables.registry import registry as tables

try:
    p = load_params("params.yaml")
except (ConfigError, OSError) as e:
    sys.exit(f"check: {e}")
errors = []
# every declared table (nriqa_lib/tables): its rendered notebook, its main table in each format, the figures dvc.yaml
# lists as plots, its metrics.json; then the compute stages' outputs and the report
expected = {t.folder: [f"{t.name}__*.ipynb", f"{t.name}__*.html"]
            + [f"tables/{t.shown[0]}.{ext}" for ext in ("csv", "md", "tex") if t.shown]
            + [f"figures/{x}.png" for x in t.plots] + (["metrics.json"] if t.metrics else []) for t in tables()}
for stage, files in {
    **expected,
    "report": ["report__*.html", "report.md", "claims.tex", "tables.tex"],
    "finetune": [f"{d}/status.json" for d in p.data.datasets],
    "figures": ["tsne_hidden.png", "pred_vs_mos.png", "gradcam.png"],
    "cross": [f"{a}__{b}/*/predictions.csv" for a, b in p.t2.cross if {a, b} <= set(p.data.datasets)],
    "zeroshot": [f"{d}/{f}" for d in p.data.datasets for f in ("scores.csv", "notes.csv")],
}.items():
    for f in files:
        if not list((Path("results") / stage).glob(f)):
            errors.append(f"missing results/{stage}/{f}")
# on CLIVE (real human ratings) each pretrained backbone with a random-init control in features.backbones must be
# clearly above it (any backbones: the control of X is random_X)
t1 = json.loads(Path("results/t1/metrics.json").read_text()) if Path("results/t1/metrics.json").is_file() else {}
for ctrl_name in [b for b in p.features.backbones if b.startswith("random_")]:
    name, rows = ctrl_name.removeprefix("random_"), t1.get("clive", {})
    if name not in rows or ctrl_name not in rows:
        print(f"check: no CLIVE T1 row of {name} and its control {ctrl_name}: that comparison is not checked")
        continue
    real, ctrl = rows[name]["srcc"], rows[ctrl_name]["srcc"]
    print(f"check: CLIVE T1 SRCC {name} {real:.3f} vs random control {ctrl:.3f}")
    if not (real > 0.5 and real > ctrl + 0.15):
        errors.append(f"CLIVE: pretrained {name} SRCC {real:.3f} not clearly above the random control {ctrl:.3f}")
if Path("results/t2/tables/t2_tests.csv").is_file():
    tests = pd.read_csv("results/t2/tables/t2_tests.csv")
    if not {"p_holm", "p_wilcoxon_holm", "mde80", "min_p_wilcoxon"} <= set(tests.columns) or not tests["p_holm"].between(0, 1).all():
        errors.append("T2 tests lack Holm-adjusted p-values in [0, 1]")
if Path("results/t1/tables/t1_backbones.md").is_file() and "±" not in Path("results/t1/tables/t1_backbones.md").read_text():
    errors.append("T1 table has no uncertainty (mean ± sd)")
for nb in Path("results").glob("*/*.ipynb"):
    if '"name": "stderr"' in nb.read_text():
        errors.append(f"{nb} shows stderr output to the reader")
# every executed notebook ran the code of its source (notebooks/<name>.py via the built .ipynb), papermill's
# injected parameters aside: a stale render is an error
import nbformat  # noqa: E402

from nriqa_lib.pipeline.registry import registry  # noqa: E402


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


for name, st in registry().items():
    if not st.is_notebook:
        continue
    if not Path(f"notebooks/{name}.ipynb").is_file():
        errors.append(f"missing notebooks/{name}.ipynb (python scripts/make_notebooks.py)")
        continue
    src = _code(nbformat.read(f"notebooks/{name}.ipynb", as_version=4))
    for done in Path(st.out_dir).glob(f"{name}__*.ipynb"):
        if _code(nbformat.read(done, as_version=4)) != src:
            errors.append(f"{done} did not run the code of notebooks/{name}.py (stale: dvc repro {name})")
# the README's Findings mirror the committed results/summary.md (python -m nriqa_lib.report.summary --readme): a
# check of the commit, the same on every machine. Then how this run's findings compare with the committed ones:
# head training's last bits depend on the CPU (docs/pipeline.md, "The same numbers on every machine"), so the digits may
# differ on another CPU; a verdict that differs is an error.
import io  # noqa: E402
import subprocess  # noqa: E402

from nriqa_lib.report.summary import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, SUMMARY_PNG, readme_block  # noqa: E402


def _committed(path: str) -> str | None:
    """``path`` as committed (HEAD), or None (not a git checkout, or not committed)."""
    r = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


for f in (SUMMARY_MD, SUMMARY_JSON, SUMMARY_PNG, SUMMARY_CSV):
    if not Path(f).is_file():
        errors.append(f"missing {f}")
md = _committed(SUMMARY_MD)
md = md if md is not None else (Path(SUMMARY_MD).read_text() if Path(SUMMARY_MD).is_file() else None)
if md is not None and readme_block(Path("README.md").read_text()) != md:
    errors.append(f"README.md's Findings differ from the committed {SUMMARY_MD}: python -m nriqa_lib.report.summary "
                  f"--readme")
csv = _committed(SUMMARY_CSV)
if csv is not None and Path(SUMMARY_CSV).is_file():
    if Path(SUMMARY_CSV).read_text() == csv:
        print(f"check: this run's findings ({SUMMARY_CSV}) equal the committed ones byte for byte")
    else:
        was, now = pd.read_csv(io.StringIO(csv)).set_index("claim"), pd.read_csv(SUMMARY_CSV).set_index("claim")
        both = was.index.intersection(now.index)
        moved = [c for c in both if not was.loc[c].equals(now.loc[c])]
        flipped = [c for c in both if was.at[c, "verdict"] != now.at[c, "verdict"]]
        est = (now.loc[both, "estimate"] - was.loc[both, "estimate"]).abs().max()
        print(f"check: this run's findings differ from the committed ones in {len(moved)} of {len(both)} claims (largest "
              f"estimate change {est:.4f}; {len(flipped)} verdicts differ; claims only committed / only here: "
              f"{len(was.index.difference(now.index))} / {len(now.index.difference(was.index))})")
        errors += [f"verdict of '{c}': committed '{was.at[c, 'verdict']}', this run '{now.at[c, 'verdict']}'"
                   for c in flipped]
print("\n".join(errors) or "check: pipeline outputs OK")
sys.exit(1 if errors else 0)
