"""Progress of a stage's long loop: count, rate and ETA, one line per update on stdout (issue 40 item 7).

tqdm's bar redraws one terminal line with carriage returns: a log keeps it as one unreadable line, and the stages
disabled it outside a terminal, so ``dvc repro`` in CI or under nohup showed nothing for minutes. Here tqdm only
formats (:meth:`tqdm.format_meter`: the same counts, elapsed, remaining and rate a bar shows) and each update is
its own line, at most one every ``every`` seconds plus the last, so a terminal and a log read alike."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """``Progress(total, "heads on clive", "head")``; ``.update(n, note)`` after each unit of work."""

    def __init__(self, total: int, what: str, unit: str = "it", every: float = 10.0, stream=None,
                 clock=time.monotonic):
        self.total, self.what, self.unit, self.every = int(total), what, unit, float(every)
        self.stream, self.clock = stream, clock
        self.n, self.start, self.last = 0, clock(), None

    def update(self, n: int = 1, note: str = "") -> str | None:
        """Count ``n`` more units; print (and return) a line when ``every`` seconds passed since the last one, or
        at the end."""
        self.n += n
        now = self.clock()
        if self.n < self.total and self.last is not None and now - self.last < self.every:
            return None
        self.last = now
        line = tqdm.format_meter(self.n, self.total, now - self.start, prefix=self.what, unit=self.unit,
                                 bar_format="{desc}: {n_fmt}/{total_fmt}, elapsed {elapsed}, ETA {remaining} "
                                            "({rate_fmt})").replace("( ", "(") + (f" {note}" if note else "")
        print(line, file=self.stream or sys.stdout, flush=True)
        return line
