"""Where the repository is when DVC runs an experiment in a temporary copy.

``dvc exp run --temp`` and ``dvc queue`` workers run each experiment in a copy of the repository under
``<repo>/.dvc/tmp/exps/...``, and ``python -m nriqa_lib.cli`` then imports the copy. Paths relative to the
repository (``../shared/datasets/clive``) must still mean the user's repository, and the caches (features,
MA-CLIP views, sha256, fine-tuning checkpoints) are shared with it, so queued experiments reuse each other's
features (file locks keep concurrent workers apart).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_ROOT", "origin_root", "cache_dir", "repo_path"]

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_MARK = (".dvc", "tmp", "exps")


def origin_root(path: Path = PACKAGE_ROOT) -> Path | None:
    """The repository a DVC experiment workspace was copied from, or None outside such a workspace."""
    parts = Path(path).resolve().parts
    for i in range(len(parts) - len(_MARK) + 1):
        if parts[i:i + len(_MARK)] == _MARK:
            return Path(*parts[:i])
    return None


def cache_dir(sub: str) -> Path:
    """``cache/<sub>``: of the user's repository inside a DVC experiment workspace, else relative to the cwd."""
    origin = origin_root(Path.cwd())
    return (origin / "cache" / sub) if origin is not None else Path("cache") / sub


def repo_path(raw: str, base: Path = PACKAGE_ROOT) -> Path:
    """A path from params: absolute as is; relative from the repository root, and inside a DVC experiment
    workspace from the user's repository when the copy does not have it (``../shared/...``)."""
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p
    here = (Path(base) / p).resolve()
    origin = origin_root(base)
    if not here.exists() and origin is not None:
        return (origin / p).resolve()
    return here
