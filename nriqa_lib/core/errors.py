"""The errors a stage reports as one line (the command line prints ``error: <message>`` and exits 2); each is
raised with a message naming the file, row or key."""
from __future__ import annotations

__all__ = ["ManifestError"]


class ManifestError(ValueError):
    """Bad manifest or dataset; the message is one line naming the file/row/key."""
