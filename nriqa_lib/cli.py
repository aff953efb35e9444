"""Command line of the DVC stages: ``python -m nriqa_lib.cli <stage> ...``.

One subcommand per compute stage of the Stage registry (``nriqa_lib.pipeline.registry``: its options, help and
output folders) plus ``notebook <name>`` for the notebook stages, and the tools ``weights``, ``hash``, ``profile``.

Every call loads and checks params.yaml first, so a typo fails at the start with one line; the stage then
sees only the params it declares.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()      # the stage's time includes its imports (torch, pandas: seconds of a short stage)

from .core.config import ConfigError  # noqa: E402
from .core.params import load_params  # noqa: E402
from .data.manifest import ManifestError  # noqa: E402
from .stages.notebook import NotebookInputError  # noqa: E402


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


def _weights(action: str, names: list[str], backbones: list[str], weights: dict[str, str]) -> int:
    """``weights list|check|fetch``: where each backbone's weights come from, whether they are here, and a
    download into the HF cache when online (default: ``backbones``, each with its local file from ``weights``).
    check exits 2 when any is absent."""
    from .backbones.registry import REGISTRY, unknown_backbone_message
    from .backbones.weights import fetch_weights, weight_source
    names = names or backbones
    for n in names:
        if n not in REGISTRY:
            raise ConfigError(unknown_backbone_message(n, "weights"))
    absent = []
    for n in names:
        if action == "fetch":
            print(f"{n}: {fetch_weights(REGISTRY[n])}")
            continue
        w = weight_source(REGISTRY[n], weights.get(n))
        size = f"{w['size_mb']} MB" if w["size_mb"] is not None else "size unknown"
        state = "present" if w["present"] else (f"CORRUPT: {w['problem']}" if w.get("problem") else "ABSENT")
        print(f"{n}: {w['kind']} {w['source']} ({size}) {state}" + (f" at {w['path']}" if w["path"] else ""))
        if not w["present"]:
            absent.append(n)
    if action == "check" and absent:
        print(f"error: weights absent offline for {', '.join(absent)} (python -m nriqa_lib.cli weights fetch, or "
              f"features.weights.<backbone>: /path/file)", file=sys.stderr)
        return 2
    return 0


def build_parser(stages: dict | None = None) -> argparse.ArgumentParser:
    """The command line, its stage subcommands derived from ``stages`` (default: the registry)."""
    from .pipeline.registry import registry
    stages = stages if stages is not None else registry()
    ap = argparse.ArgumentParser(prog="python -m nriqa_lib.cli", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for st in stages.values():
        if st.is_notebook:
            continue
        s = sub.add_parser(st.name, help=st.desc or None)
        if st.matrix:
            s.add_argument("--dataset", required=True)
        for o in st.options:
            s.add_argument(o.flag, dest=o.keyword, help=o.help or None, choices=o.choices,
                           action="append" if o.repeat else "store")
    s = sub.add_parser("hash", help="write every image's sha256 into data_manifests/<dataset>.csv (once you have "
                                    "the images; later runs then verify them)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--rehash", action="store_true", help="hash every image again (the hash cache trusts an "
                                                         "unchanged path, size, mtime, ctime and inode)")
    s = sub.add_parser("weights", help="list / check / fetch the weights of the configured backbones (features."
                                       "backbones, t5.backbones where T5 runs, t4.clip_models; or the names given)")
    s.add_argument("action", choices=["list", "check", "fetch"])
    s.add_argument("backbones", nargs="*")
    s = sub.add_parser("profile", help="run a params profile as a DVC experiment (dvc exp run -S ...), e.g. "
                                       "`profile paper params-paper.yaml`; params.yaml is left as it is")
    s.add_argument("name")
    s.add_argument("file")
    s.add_argument("--queue", action="store_true", help="queue it (dvc queue start runs it)")
    s.add_argument("--dry-run", action="store_true", help="only print the dvc command")
    s = sub.add_parser("notebook", help="run a notebook stage (a table, the data overview, the report)")
    s.add_argument("name", choices=[n for n, st in stages.items() if st.is_notebook])
    s.add_argument("--out", required=True)
    s.add_argument("--tag", help="parameter label for the executed notebook's name, e.g. head-B")
    return ap


TOOLS = ("weights", "profile", "hash")      # subcommands that are not stages: no params stamp, no timing line


def _timed_label(a: argparse.Namespace) -> str | None:
    """What the one timing line names: the stage (and its dataset or notebook); None for the tools."""
    if a.cmd in TOOLS:
        return None
    if a.cmd == "notebook":
        return f"notebook {a.name}"
    return a.cmd + (f"@{a.dataset}" if getattr(a, "dataset", None) else "")


def main(argv: list[str] | None = None) -> int:
    """Run one stage or tool; a stage that succeeds ends with one line on stderr, ``nriqa: stage NAME took S s``
    (DVC prints no per-stage time; CI and the notes read these lines). A failure stays its one-line error."""
    from .pipeline.registry import registry
    stages = registry()
    ap = build_parser(stages)
    a = ap.parse_args(argv)
    t0 = _T0 if argv is None else time.perf_counter()       # a process of its own: from its first import
    rc = _main(stages, a)
    label = _timed_label(a)
    if label and rc == 0:
        print(f"nriqa: stage {label} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return rc


def _main(stages: dict, a: argparse.Namespace) -> int:
    try:
        stamp = Path("results/params.ok")
        if os.environ.get("DVC_STAGE") and a.cmd not in ("check", *TOOLS) and not stamp.is_file():
            raise ConfigError(f"{stamp} is missing: the check stage failed or did not run; run `dvc repro check` "
                              f"(or a plain `dvc repro`) first")
        p = load_params(a.params)
        # the names too, for every stage and tool (one line at the start instead of a KeyError mid-run); a stage's
        # code deps in dvc.yaml leave this out: it changes no output. The check stage runs it itself.
        from .stages.check import check_params
        if a.cmd != "check":
            check_params(p)
        if a.cmd == "weights":
            from .stages.check import required_backbones
            return _weights(a.action, a.backbones, list(dict.fromkeys([*required_backbones(p), *p.t4.clip_models])),
                            p.features.weights)
        if a.cmd == "profile":
            from .pipeline.profiles import run_profile
            check_params(load_params(a.file))       # the profile itself must be valid
            try:
                return run_profile(a.name, a.file, queue=a.queue, dry_run=a.dry_run, base_file=a.params)
            except ValueError as e:              # a value DVC's override grammar cannot carry
                raise ConfigError(f"profile {a.file}: {e}") from None
        if a.cmd == "hash":
            from .data.manifest import fingerprint, write_sha256
            if a.rehash:
                fp = fingerprint(a.dataset, p.data.roots, manifest=p.data.manifests.get(a.dataset), rehash=True)
                print(f"{a.dataset}: every image hashed again ({fp['rows']} files), content {fp['content_sha256'][:16]}")
            print(f"sha256 of every image written to {write_sha256(a.dataset, p.data.roots)}")
        elif a.cmd == "notebook":
            _writable(a.out)
            from .stages.notebook import run_notebook
            run_notebook(a.name, a.out, a.params, a.tag)
        else:
            from .backbones.registry import REGISTRY, unknown_backbone_message
            from .pipeline.registry import view
            for b in getattr(a, "backbones", None) or []:
                if b not in REGISTRY:
                    raise ConfigError(unknown_backbone_message(b, "--backbone"))
            st = stages[a.cmd]
            _writable(*st.writes)
            kw = {o.keyword: getattr(a, o.keyword) for o in st.options if getattr(a, o.keyword) is not None}
            if st.matrix:
                kw["dataset"] = a.dataset
            st.load().run(view(p, a.cmd), **kw)
    except (ConfigError, ManifestError, FileNotFoundError, KeyError, FloatingPointError, NotebookInputError) as e:
        # (WeightsError is a FileNotFoundError)
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    except OSError as e:                      # disk full, read-only file system, permissions
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"error: cannot write{where}: {e.strerror or e} (free space or permissions?)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
