import pytest
import torch
from torch import nn

from nriqa_lib.heads.registry import ACTIVATIONS, PRESETS
from nriqa_lib.heads.activations import GatedBlend, KWaySelection, ParamSigmoid, get_activation
from nriqa_lib.heads.mlp import MLPHead, build_head, selection_shares


def test_mlp_head_shape_and_presets():
    h = build_head("B", 1280)
    lin = [m for m in h.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(1280, 512), (512, 512), (512, 1)]
    assert not any(isinstance(m, (nn.Dropout, nn.BatchNorm1d, nn.LayerNorm)) for m in h.modules())
    assert h(torch.randn(5, 1280)).shape == (5,)
    assert isinstance(build_head("B_Sig", 8, hidden=4).acts[0], nn.Sigmoid)
    leaky = build_head("B_Sig", 8, hidden=4).acts[1]
    assert isinstance(leaky, nn.LeakyReLU) and leaky.negative_slope == 0.01
    g = build_head("B_Gated", 8, hidden=4)
    assert isinstance(g.acts[0], GatedBlend) and isinstance(g.acts[1], nn.PReLU)
    assert torch.allclose(g.acts[1].weight, torch.full((4,), 0.25))
    for a in ("relu", "gelu", "sigmoid", "tanh", "leaky_relu"):
        h = build_head(a, 8, hidden=4)
        assert h.act_names == (a, a)
    assert len(build_head("B", 8, hidden=4, depth=4).linears) == 3   # depth counts Linear layers


def test_param_sigmoid_equation_and_init():
    s = ParamSigmoid(3, gamma=True)
    assert torch.equal(s.alpha.data, torch.ones(3)) and torch.equal(s.beta.data, torch.zeros(3))
    assert torch.equal(s.gamma.data, torch.full((3,), 2.0))
    with torch.no_grad():
        s.alpha.copy_(torch.tensor([1.0, 10.0, -2.0]))
        s.beta.copy_(torch.tensor([0.5, 0.0, 1.0]))
    z = torch.tensor([[3.0, 5.0, -1.0]])
    want = 2.0 * torch.sigmoid(torch.clamp(torch.tensor([3.5, 50.0, 3.0]), -20, 20))
    assert torch.allclose(s(z), want)


def test_gated_blend_equals_kway_with_two_candidates():
    torch.manual_seed(0)
    C = 16
    gb = GatedBlend(C)
    kw = KWaySelection(C, ["param_sigmoid", "prelu"])
    with torch.no_grad():
        for p in (gb.sig.alpha, gb.sig.beta, gb.g, gb.prelu.weight):
            p.copy_(torch.randn(C))
        kw.acts[0].alpha.copy_(gb.sig.alpha)
        kw.acts[0].beta.copy_(gb.sig.beta)
        kw.acts[1].weight.copy_(gb.prelu.weight)
        kw.logits.copy_(torch.stack([gb.g, torch.zeros(C)]))
    z = 3 * torch.randn(64, C)
    d = (gb(z) - kw(z)).abs().max().item()
    assert d < 4 * torch.finfo(torch.float32).eps * z.abs().max().item(), d   # float32 rounding of softmax vs sigmoid
    # and the hand formula: w S(z) + (1 - w) P(z)
    w = torch.sigmoid(gb.g)
    S = torch.sigmoid(torch.clamp(gb.sig.alpha * z + gb.sig.beta, -20, 20))
    P = torch.where(z >= 0, z, gb.prelu.weight * z)
    assert torch.allclose(gb(z), w * S + (1 - w) * P, atol=1e-5)


def test_kway_soft_hard_temperature_entropy_and_shares():
    torch.manual_seed(1)
    kw = KWaySelection(4, ["relu", "tanh", "identity"], temperature=0.5)
    with torch.no_grad():
        kw.logits.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 2.5]]))
    z = torch.randn(10, 4)
    w = torch.softmax(kw.logits / 0.5, 0)
    soft = w[0] * torch.relu(z) + w[1] * torch.tanh(z) + w[2] * z
    assert torch.allclose(kw(z), soft, atol=1e-6)
    kw.hard = True
    kw.eval()
    hard = torch.stack([torch.relu(z[:, 0]), torch.tanh(z[:, 1]), z[:, 2], z[:, 3]], 1)
    assert torch.allclose(kw(z), hard)
    kw.train()
    assert torch.allclose(kw(z), soft, atol=1e-6)      # hard only at inference
    assert kw.shares() == {"relu": 0.25, "tanh": 0.25, "identity": 0.5}
    p = torch.softmax(kw.logits / 0.5, 0)
    assert kw.entropy().item() == pytest.approx(float(-(p * p.log()).sum(0).mean()), rel=1e-6)


def test_selection_shares_for_heads():
    h = build_head("kway", 8, hidden=6, candidates=["relu", "sigmoid"])
    s = selection_shares(h)
    assert set(s) == {"act1", "act2"} and all(abs(sum(d.values()) - 1) < 1e-9 for d in s.values())
    g = build_head("B_Gated", 8, hidden=4)
    with torch.no_grad():
        g.acts[0].g.copy_(torch.tensor([1.0, -1.0, 2.0, -3.0]))
    assert selection_shares(g) == {"act1": {"param_sigmoid": 0.5, "prelu": 0.5}}


def test_every_activation_builds():
    z = torch.randn(3, 5)
    for a in ACTIVATIONS:
        assert get_activation(a, 5)(z).shape == z.shape
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("swish2", 5)
    with pytest.raises(ValueError, match="unknown head"):
        build_head("B_Foo", 5)
    assert set(PRESETS) >= {"B", "B_Sig", "B_Gated", "kway"}
