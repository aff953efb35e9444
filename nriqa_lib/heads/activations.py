"""Activations of P1's heads (STUDY_SPEC.md section 1): fixed ones, ParamSigmoid, PReLU, GatedBlend,
and our K-way per-channel selection."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import ACTIVATIONS as _NAMES

__all__ = ["ACTIVATIONS", "get_activation", "ParamSigmoid", "PReLU", "GatedBlend", "KWaySelection"]


class ParamSigmoid(nn.Module):
    """P1's parametric sigmoid, per channel: S(z) = gamma * sigmoid(clamp(alpha z + beta, -20, 20)).

    alpha0 = 1, beta0 = 0; gamma (optional, gamma0 = 2) is fixed to 1 when ``gamma=False``.
    """

    def __init__(self, channels: int, gamma: bool = False):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.gamma = nn.Parameter(torch.full((channels,), 2.0)) if gamma else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(torch.clamp(self.alpha * z + self.beta, -20.0, 20.0))
        return s * self.gamma if self.gamma is not None else s


class PReLU(nn.PReLU):
    """P1's parametric leaky ReLU (``ParamLeakyReLU2``: ``torch.where(x >= 0, x, a * x)``, a per channel, a0 = 0.25),
    under nn.PReLU's state-dict name (``weight``). Where input and slope share a dtype (every fp32 run) it is
    ``F.prelu``, the same function, so fp32 numbers are unchanged; in P1's mixed precision (bf16 input, fp32 slope:
    P1 keeps the parametric activations fp32) it is P1's expression, whose ``a * x`` promotes to fp32, where
    ``F.prelu`` would compute in bf16 (measured: head gradients up to 17% apart element-wise, issue 35)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        return torch.where(x >= 0, x, self.weight * x)


def _prelu(channels: int) -> nn.Module:
    return PReLU(channels, init=0.25)


_FIXED = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
ACTIVATIONS = (*_FIXED, "param_sigmoid", "prelu")
assert ACTIVATIONS == _NAMES, "nriqa_lib.heads.ACTIVATIONS (the torch-free names) must list the same activations"


def get_activation(name: str, channels: int) -> nn.Module:
    """Build activation ``name`` for ``channels`` features (per-channel parameters where it has any)."""
    if name in _FIXED:
        return _FIXED[name]()
    if name == "param_sigmoid":
        return ParamSigmoid(channels)
    if name == "prelu":
        return _prelu(channels)
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


class GatedBlend(nn.Module):
    """P1's B_Gated first activation: h = w S(z) + (1 - w) P(z), w = sigmoid(g), g0 = 0, per channel."""

    def __init__(self, channels: int, gamma: bool = False):
        super().__init__()
        self.sig = ParamSigmoid(channels, gamma=gamma)
        self.prelu = _prelu(channels)
        self.g = nn.Parameter(torch.zeros(channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.g)
        return w * self.sig(z) + (1 - w) * self.prelu(z)


class KWaySelection(nn.Module):
    """Ours: per-channel soft selection among K candidate activations.

    weights = softmax(l / T) over the K candidates for each channel (l: K x C logits, zero init);
    h = sum_k weights_k * act_k(z). Inference is soft, or hard (argmax per channel) with ``hard=True``.
    With candidates (param_sigmoid, prelu) and logits (g, 0) this is exactly P1's GatedBlend.
    """

    def __init__(self, channels: int, candidates: Sequence[str], temperature: float = 1.0, hard: bool = False):
        super().__init__()
        if len(candidates) < 2:
            raise ValueError("KWaySelection needs at least two candidates")
        self.candidates = tuple(candidates)
        self.acts = nn.ModuleList(get_activation(c, channels) for c in self.candidates)
        self.logits = nn.Parameter(torch.zeros(len(self.candidates), channels))
        self.temperature = float(temperature)
        self.hard = hard

    def weights(self) -> torch.Tensor:
        w = torch.softmax(self.logits / self.temperature, dim=0)
        if self.hard and not self.training:
            w = torch.nn.functional.one_hot(w.argmax(0), len(self.candidates)).T.to(w.dtype)
        return w

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        return sum(w[k] * act(z) for k, act in enumerate(self.acts))

    def entropy(self) -> torch.Tensor:
        """Mean over channels of the selection entropy (the optional penalty)."""
        p = torch.softmax(self.logits / self.temperature, dim=0)
        return -(p * torch.log(p.clamp_min(1e-12))).sum(0).mean()

    def shares(self) -> dict[str, float]:
        """Fraction of channels whose largest weight is each candidate."""
        idx = self.logits.detach().argmax(0)
        return {c: float((idx == k).float().mean()) for k, c in enumerate(self.candidates)}
