"""Atomic file writes: a failed run never leaves a half-written output (temp file, then rename)."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "umask", "temp_prefix", "remove_stale_temps"]


def temp_prefix(name: str) -> str:
    """The name prefix of this process's temp files for the output ``name``: ``.<name>.tmp<pid>.`` (the pid lets a
    later run tell a killed run's leftover from a live run's file)."""
    return f".{name}.tmp{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's live process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, name: str) -> list[Path]:
    """Remove the temp files and folders for ``folder/name`` that a killed process left (``temp_prefix`` names whose
    pid is no longer running on this machine); only names of that exact shape are touched. Returns what was removed.

    A SIGKILL skips every ``finally``, so the temp of a write in progress stays behind: in a DVC directory output it
    would change the folder's hash, in the feature cache it would hold disk space for good."""
    folder = Path(folder)
    pat = re.compile(rf"^\.{re.escape(name)}\.tmp(\d+)\.")
    gone = []
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return gone
    for f in entries:
        m = pat.match(f.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f, ignore_errors=True)
            else:
                f.unlink(missing_ok=True)
            gone.append(f)
    return gone


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds. A killed earlier
    write's temp for the same ``path`` is removed first (:func:`remove_stale_temps`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())          # mkstemp creates 0600; outputs follow the user's umask
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:        # numpy's "cannot write: N requested and M written" names no file: name it
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except RuntimeError as e:       # torch.save reports a full disk as "iostream error" / "unexpected pos"
        Path(tmp).unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free / 2**20
        raise OSError(f"could not write {path}: {str(e).splitlines()[0]} ({free:.0f} MiB free on its disk)") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
