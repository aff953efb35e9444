"""Profiles as DVC experiments: params-paper.yaml (or any params file) applied on top of params.yaml with
``dvc exp run -S key=value ...``; ``dvc exp show`` lists the profile beside the default. ``dvc exp run`` writes the
overrides into the workspace's params.yaml (and leaves them there): :func:`run_profile` puts the file's bytes back
afterwards, so the next profile is diffed against the default and a plain ``dvc repro`` runs the default again."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

from .io import atomic_write_bytes

__all__ = ["overrides", "exp_command", "run_profile"]


def overrides(base_file: str | Path, profile_file: str | Path) -> list[str]:
    """DVC ``-S`` overrides (Hydra syntax) that turn the base params into the profile: ``++section.key=value`` for
    every top-level key of each section where the profile differs (values in YAML flow style), and for a mapping
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
                val = yaml.safe_dump(v, default_flow_style=True, width=10 ** 6).strip()
                if val.endswith("\n...") or val.endswith("..."):
                    val = val.rsplit("\n", 1)[0].strip()
                if isinstance(v, str) and any(c in v for c in " =,[]{}()'\"\\:"):
                    val = "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"    # a Hydra quoted string
                out.append(f"++{sec}.{k}={val}")
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
    try:
        return subprocess.call(cmd)
    finally:
        if base.read_bytes() != before:
            atomic_write_bytes(base, before)
            print(f"{base} restored (the workspace's outputs are the experiment's until the next `dvc repro`)")
