"""Profiles as DVC experiments: params-paper.yaml (or any params file) applied on top of params.yaml with
``dvc exp run -S key=value ...``, so params.yaml is never overwritten and ``dvc exp show`` lists the profile
beside the default."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

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


def run_profile(name: str, profile_file: str | Path, queue: bool = False, dry_run: bool = False) -> int:
    """Run (or queue, or only print) the profile as the DVC experiment ``name``."""
    cmd = exp_command(name, profile_file, queue=queue)
    print(shlex.join(cmd))
    return 0 if dry_run else subprocess.call(cmd)
