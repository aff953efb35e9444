"""The heads roofline's FLOP model against torch's own FLOP counter (the timing itself is the benchmark's job)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nriqa_lib.bench import heads_workload
from nriqa_lib.heads.mlp import build_head


def test_training_flops_per_sample_match_torchs_counter():
    d, h, B = 96, 32, 8
    head = build_head("B", d, hidden=h)
    x = torch.randn(B, d)
    with FlopCounterMode(display=False) as fc:
        head(x).sum().backward()
    train = heads_workload(1, 1, B, 0, 0, d, h, B)["flops"]
    assert train == fc.get_total_flops()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        head(x)
    assert heads_workload(1, 1, 0, B, 0, d, h, B)["flops"] == fc.get_total_flops()      # selection = forward


def test_the_issue_workload_is_780_gflop_in_39_steps():
    w = heads_workload(60, 3, 813, 116, 1162, 1280, 512, 64)
    assert w["flops"] / 1e9 == pytest.approx(780, rel=0.01) and w["steps"] == 39
    assert w["params"] / 1e6 == pytest.approx(55.1, rel=0.01)
