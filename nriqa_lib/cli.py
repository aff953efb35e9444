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


def _deterministic(nb_path: Path, final: Path) -> None:
    """Drop what changes between two runs of the same inputs (papermill's timestamps and durations, the
    kernel's execution timestamps), so a rerun renders byte-identical .ipynb/.html and DVC sees no change."""
    import nbformat
    nb = nbformat.read(str(nb_path), as_version=4)
    pm_meta = nb.metadata.get("papermill", {})
    for k in ("start_time", "end_time", "duration", "exception"):
        pm_meta.pop(k, None)
    pm_meta["output_path"] = str(final)
    for i, c in enumerate(nb.cells):
        if "injected-parameters" in c.metadata.get("tags", []):
            c["id"] = f"injected-parameters-{i}"
        c.metadata.pop("execution", None)
        pmc = c.metadata.get("papermill", {})
        for k in ("start_time", "end_time", "duration", "exception", "status"):
            pmc.pop(k, None)
    nbformat.write(nb, str(nb_path))


def _notebook(name: str, out_dir: str, params_file: str, tag: str | None = None) -> None:
    """Run notebooks/<name>.ipynb with papermill into out_dir (created) and render HTML with nbconvert.

    The executed notebook is named after its parameters: <name>__<tag>.ipynb (dvc.yaml builds the tag).
    Work happens in ``out_dir/.tmp-nb-<pid>``; leftovers of killed runs are removed first, and SIGTERM
    (what ``kill`` and DVC send) unwinds through the same cleanup as an error.
    """
    import shutil
    import signal
    import papermill as pm
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)      # papermill does not create output folders
    for old in list(out.glob(".tmp-nb-*")) + list(out.glob("tmp*")):
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stem = f"{name}__{tag}" if tag else name
    target = out / f"{stem}.ipynb"
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-nb-"))
    try:
        nb_tmp = tmp / target.name
        pm.execute_notebook(f"notebooks/{name}.ipynb", str(nb_tmp), parameters={"params_file": params_file,
                            "out_dir": str(out)}, kernel_name="python3", progress_bar=False, cwd=os.getcwd())
        _deterministic(nb_tmp, target)
        from nbconvert import HTMLExporter
        html, _ = HTMLExporter().from_filename(str(nb_tmp))
        (tmp / f"{name}.html").write_text(html, encoding="utf-8")
        for f in (nb_tmp, tmp / f"{name}.html"):
            os.chmod(f, 0o666 & ~_umask())
        os.replace(nb_tmp, target)
        os.replace(tmp / f"{name}.html", out / f"{stem}.html")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{target} and {out / (stem + '.html')}")


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _writable(*dirs: str) -> None:
    """Fail at once, in one line, when an output folder could not be written (read-only file system,
    permissions, a file in the way), before any work and without creating anything."""
    import errno
    for d in dirs:
        p = Path(d).absolute()
        while not p.exists():
            p = p.parent
        if not p.is_dir():
            raise OSError(errno.ENOTDIR, "a file is in the way of the output folder", str(p))
        if not os.access(p, os.W_OK):
            raise OSError(errno.EACCES, "not writable (read-only file system or permissions)", str(p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nriqa_lib.cli", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("check", help="check params.yaml and every configured dataset root")
    s.add_argument("--stamp", help="on success write this file (constant content; the DVC stage every stage "
                                   "depends on, so a bad param stops `dvc repro` before any output is removed)")
    s = sub.add_parser("splits")
    s.add_argument("--dataset", required=True)
    s = sub.add_parser("hash", help="write every image's sha256 into data_manifests/<dataset>.csv (once you have "
                                    "the images; later runs then verify them)")
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
            if a.stamp:
                from .io import atomic_write_text
                atomic_write_text(a.stamp, "params OK\n")
        elif a.cmd == "splits":
            _splits(p, a.dataset)
        elif a.cmd == "hash":
            from .data.manifest import write_sha256
            print(f"sha256 of every image written to {write_sha256(a.dataset, p.data.roots)}")
        elif a.cmd in ("features", "heads"):
            from .backbones import REGISTRY, unknown_backbone_message
            for b in a.backbone or []:
                if b not in REGISTRY:
                    raise ConfigError(unknown_backbone_message(b, "--backbone"))
            if a.cmd == "features":
                _writable("features", "cache/features")
                _features(p, a.dataset, a.backbone or p.features.backbones)
            else:
                _writable("results/heads")
                _heads(p, a.dataset, a.backbone or p.features.backbones)
        elif a.cmd == "notebook":
            _writable(a.out)
            _notebook(a.name, a.out, a.params, a.tag)
    except (ConfigError, ManifestError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                      # disk full, read-only file system, permissions
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"error: cannot write{where}: {e.strerror or e} (free space or permissions?)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
