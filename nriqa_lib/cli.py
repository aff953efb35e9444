"""Command line of the DVC stages: ``python -m nriqa_lib.cli <step> ...``.

Every step loads and checks params.yaml first, so a typo fails at the start with one line.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .config import ConfigError, Params, load_params
from .data.manifest import ManifestError


def _splits(p: Params, dataset: str) -> None:
    from .data.manifest import load_dataset
    from .data.splits import make_splits, save_splits
    from .study import splits_path
    m = load_dataset(dataset, p.data.roots, decode=False)
    scheme = p.splits.schemes.get(dataset, "random")
    sp = make_splits(m.table, scheme, n_splits=p.splits.n_splits, ratios=p.splits.ratios, seed=p.splits.seed,
                     liqe_folder=p.splits.liqe_folder)
    save_splits(sp, splits_path(dataset))
    sizes = sp.groupby(["split", "part"]).size().unstack().mean().round(1).to_dict()
    print(f"{dataset}: scheme {scheme}, {sp['split'].nunique()} split(s), mean sizes {sizes}")


def _features(p: Params, dataset: str, backbones: list[str]) -> None:
    """Features of every backbone on one dataset (validated once; each backbone cached on its own key)."""
    from .backbones import create_backbone
    from .data.manifest import load_dataset
    from .features import extract_features, save_feature_set
    from .study import features_dir
    m = load_dataset(dataset, p.data.roots)          # validates files (existence, sha256, decoding) first
    for backbone in backbones:
        bb = create_backbone(backbone, weights=p.features.weights.get(backbone))
        t = time.time()
        fs = extract_features(bb, m, test_time=p.features.test_time, batch_size=p.features.batch_size,
                              threads=p.features.threads, chunk_size=p.features.chunk_size,
                              progress=sys.stderr.isatty())
        save_feature_set(fs, features_dir(dataset, backbone))
        print(f"{backbone} on {dataset}: {fs.features.shape} in {time.time() - t:.1f}s (key {fs.key})")


def _heads(p: Params, dataset: str, backbones: list[str]) -> None:
    import torch
    from .data.manifest import load_dataset
    from .data.splits import load_splits
    from .study import heads_dir, run_heads, save_heads, splits_path
    torch.set_num_threads(p.features.threads)
    manifest = load_dataset(dataset, p.data.roots, decode=False)
    splits = load_splits(splits_path(dataset))
    for backbone in backbones:
        t = time.time()
        pred, shares = run_heads(p, dataset, backbone, manifest=manifest, splits=splits)
        save_heads(pred, shares, heads_dir(dataset, backbone))
        print(f"heads on {dataset}/{backbone}: {pred['head'].nunique()} specs x {pred['split'].nunique()} splits "
              f"in {time.time() - t:.1f}s")


def _notebook(name: str, out_dir: str, params_file: str, tag: str | None = None) -> None:
    """Run notebooks/<name>.ipynb with papermill into out_dir (created) and render HTML with nbconvert.

    The executed notebook is named after its parameters: <name>__<tag>.ipynb (dvc.yaml builds the tag).
    """
    import papermill as pm
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)      # papermill does not create output folders
    stem = f"{name}__{tag}" if tag else name
    target = out / f"{stem}.ipynb"
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        nb_tmp = Path(tmp) / target.name
        pm.execute_notebook(f"notebooks/{name}.ipynb", str(nb_tmp), parameters={"params_file": params_file,
                            "out_dir": str(out)}, kernel_name="python3", progress_bar=False, cwd=os.getcwd())
        from nbconvert import HTMLExporter
        html, _ = HTMLExporter().from_filename(str(nb_tmp))
        (Path(tmp) / f"{name}.html").write_text(html, encoding="utf-8")
        os.replace(nb_tmp, target)
        os.replace(Path(tmp) / f"{name}.html", out / f"{stem}.html")
    print(f"{target} and {out / (stem + '.html')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nriqa_lib.cli", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="check params.yaml and every configured dataset root")
    s = sub.add_parser("splits")
    s.add_argument("--dataset", required=True)
    for name in ("features", "heads"):
        s = sub.add_parser(name, help=f"{name} of every backbone in features.backbones (or --backbone) on a dataset")
        s.add_argument("--dataset", required=True)
        s.add_argument("--backbone", action="append", help="restrict to this backbone (repeatable)")
    s = sub.add_parser("notebook")
    s.add_argument("name")
    s.add_argument("--out", required=True)
    s.add_argument("--tag", help="parameter label for the executed notebook's name, e.g. head-B")
    a = ap.parse_args(argv)
    try:
        p = load_params(a.params)
        if a.cmd == "check":
            from .data.manifest import manifest_path, resolve_root
            for d in p.data.datasets:
                if d != "synthetic":             # the synthetic set is generated by its DVC stage
                    manifest_path(d)
                    resolve_root(d, p.data.roots)
            print(f"params OK: datasets {p.data.datasets}, backbones {p.features.backbones}")
        elif a.cmd == "splits":
            _splits(p, a.dataset)
        elif a.cmd in ("features", "heads"):
            (_features if a.cmd == "features" else _heads)(p, a.dataset, a.backbone or p.features.backbones)
        elif a.cmd == "notebook":
            _notebook(a.name, a.out, a.params, a.tag)
    except (ConfigError, ManifestError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
