"""core.progress: count, elapsed, ETA and rate on one line per update, throttled, the last always printed."""
from __future__ import annotations

import io

from nriqa_lib.core.progress import Progress


def test_progress_lines_carry_count_eta_and_rate_and_are_throttled():
    t, out = [0.0], io.StringIO()
    bar = Progress(10, "heads on clive", "head", every=10.0, stream=out, clock=lambda: t[0])
    for _ in range(10):
        t[0] += 4.0
        bar.update(note="x/B")
    lines = out.getvalue().splitlines()
    # 4 s a head: printed at 1 (first), 4 (16 s, 12 s after), 7 (28 s), 10 (the last); no carriage return
    assert [ln.split(":")[1].split(",")[0].strip() for ln in lines] == ["1/10", "4/10", "7/10", "10/10"]
    assert lines[0] == "heads on clive: 1/10, elapsed 00:04, ETA 00:36 (4.00s/head) x/B"
    assert lines[1].startswith("heads on clive: 4/10, elapsed 00:16, ETA 00:24") and "\r" not in out.getvalue()


def test_progress_every_zero_prints_each_step():
    out = io.StringIO()
    bar = Progress(3, "cross", "backbone", every=0, stream=out, clock=iter([0.0, 5.0, 10.0, 15.0]).__next__)
    for _ in range(3):
        bar.update()
    assert len(out.getvalue().splitlines()) == 3 and "3/3" in out.getvalue()
