"""Profiles as DVC experiments: params-paper.yaml (or any params file) applied on top of params.yaml with
``dvc exp run -S key=value ...``; ``dvc exp show`` lists the profile beside the default. ``dvc exp run`` writes the
overrides into the workspace's params.yaml (and leaves them there): :func:`run_profile` puts the file's bytes back
afterwards, so the next profile is diffed against the default and a plain ``dvc repro`` runs the default again."""
from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

import yaml

from ..core.io import atomic_write_bytes

__all__ = ["overrides", "exp_command", "run_profile"]


def hydra_value(v) -> str:
    """``v`` in Hydra's override grammar (what ``dvc exp run -S`` parses): a plain word as it is, any other string
    single-quoted with backslash and single quote escaped, so '#', '~', ': ', quotes and non-ASCII text come back as the same string; lists and mappings
    element by element (YAML's own flow style is not Hydra's: it doubles quotes and escapes non-ASCII)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and v.lower() not in ("true", "false", "null", "nan", "inf"):
            return v                        # a plain word (test, B_Gated, p1): as it reads
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(hydra_value(x) for x in v) + "]"
    if isinstance(v, dict):
        bad = [k for k in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k))]
        if bad:         # Hydra's grammar has no quoted mapping keys
            raise ValueError(f"mapping key {bad[0]!r} cannot be passed to dvc exp run -S (letters, digits and _ only)")
        return "{" + ", ".join(f"{k}: {hydra_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot pass {v!r} ({type(v).__name__}) to dvc exp run -S")


def overrides(base_file: str | Path, profile_file: str | Path) -> list[str]:
    """DVC ``-S`` overrides (Hydra syntax) that turn the base params into the profile: ``++section.key=value`` for
    every top-level key of each section where the profile differs (:func:`hydra_value`), and for a mapping
    ``~section.key.sub`` for each entry the profile drops (Hydra merges mappings; the profile must replace them)."""
    base = yaml.safe_load(Path(base_file).read_text()) or {}
    prof = yaml.safe_load(Path(profile_file).read_text()) or {}
    out = []
    for sec, keys in prof.items():
        for k, v in (keys or {}).items():
            old = (base.get(sec) or {}).get(k)
            if old != v:
                if isinstance(old, dict) and isinstance(v, dict):
                    out += [f"~{sec}.{k}.{sub}" for sub in old if sub not in v]
                out.append(f"++{sec}.{k}={hydra_value(v)}")
    return out


def exp_command(name: str, profile_file: str | Path, base_file: str | Path = "params.yaml",
                queue: bool = False) -> list[str]:
    cmd = ["dvc", "exp", "run", "-n", name] + (["--queue"] if queue else [])
    for o in overrides(base_file, profile_file):
        cmd += ["-S", o]
    return cmd


def run_profile(name: str, profile_file: str | Path, queue: bool = False, dry_run: bool = False,
                base_file: str | Path = "params.yaml") -> int:
    """Run (or queue, or only print) the profile as the DVC experiment ``name``; ``base_file`` is byte-identical
    afterwards (the experiment's params stay in its commit: ``dvc exp show``, ``dvc exp apply``)."""
    cmd = exp_command(name, profile_file, base_file, queue=queue)
    print(shlex.join(cmd))
    if dry_run:
        return 0
    base = Path(base_file)
    before = base.read_bytes()
    # SIGTERM / SIGHUP (`timeout`, a SLURM limit, a closed session) unwind through the `finally` below as Ctrl-C
    # does: the experiment is stopped and params.yaml restored (before, they skipped it and left the try's values
    # in params.yaml for the next plain `dvc repro`)
    def stop(sig, _frame):
        raise SystemExit(128 + sig)
    old = {sg: signal.signal(sg, stop) for sg in (signal.SIGTERM, signal.SIGHUP)}
    proc = None
    try:
        proc = subprocess.Popen(cmd)
        return proc.wait()
    finally:
        for sg, h in old.items():
            signal.signal(sg, h)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if base.read_bytes() != before:
            atomic_write_bytes(base, before)
            print(f"{base} restored (the workspace's outputs are the experiment's until the next `dvc repro`)")
