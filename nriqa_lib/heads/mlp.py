"""P1's identical MLP head (3 Linear layers, hidden 512, no dropout/norm, scalar out) and its presets."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..core.config import T3
from .registry import ACTIVATIONS, PRESETS
from .activations import GatedBlend, KWaySelection, get_activation

__all__ = ["MLPHead", "PRESETS", "build_head", "selection_shares"]

_CANDIDATES = tuple(T3().candidates)     # t3.candidates' default (nriqa_lib.core.config), the one source of it


class MLPHead(nn.Module):
    """score = W3 act2(W2 act1(W1 x + b1) + b2) + b3 (more layers with longer ``widths``)."""

    def __init__(self, in_dim: int, widths: Sequence[int] = (512, 512), acts: Sequence[str] = ("relu", "relu"),
                 candidates: Sequence[str] = _CANDIDATES, temperature: float = 1.0, hard: bool = False):
        super().__init__()
        if len(acts) != len(widths):
            raise ValueError(f"need one activation per hidden layer: {len(widths)} widths, {len(acts)} acts")
        dims = [in_dim, *widths]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(self._act(a, w, candidates, temperature, hard) for a, w in zip(acts, widths))
        self.out = nn.Linear(dims[-1], 1)
        self.act_names = tuple(acts)

    @staticmethod
    def _act(name: str, c: int, candidates, temperature, hard) -> nn.Module:
        if name == "gated_blend":
            return GatedBlend(c)
        if name == "gated_blend_gamma":
            return GatedBlend(c, gamma=True)
        if name == "kway":
            return KWaySelection(c, candidates, temperature, hard)
        return get_activation(name, c)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (for t-SNE plots)."""
        for lin, act in zip(self.linears, self.acts):
            x = act(lin(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        ents = [a.entropy() for a in self.acts if isinstance(a, KWaySelection)]
        return torch.stack(ents).mean() if ents else torch.zeros(())


def build_head(spec: str, in_dim: int, hidden: int = 512, depth: int = 3, candidates: Sequence[str] = _CANDIDATES,
               temperature: float = 1.0, hard: bool = False) -> MLPHead:
    """A preset (B, B_Sig, B_Gated, B_Gated_gamma, kway) or one activation name used in every hidden layer."""
    if spec in PRESETS:
        a1, a2 = PRESETS[spec]
    elif spec in ACTIVATIONS:
        a1 = a2 = spec
    else:
        raise ValueError(f"unknown head {spec!r}; presets {', '.join(PRESETS)} or an activation {', '.join(ACTIVATIONS)}")
    if depth < 2:
        raise ValueError("depth counts Linear layers and must be >= 2")
    acts = [a1] + [a2] * (depth - 2)
    return MLPHead(in_dim, [hidden] * (depth - 1), acts, candidates, temperature, hard)


def selection_shares(head: MLPHead) -> dict[str, dict[str, float]]:
    """Per selection layer (act1, act2, ...): share of channels choosing each candidate.

    For GatedBlend the two candidates are param_sigmoid (g > 0) and prelu.
    """
    out = {}
    for i, a in enumerate(head.acts, 1):
        if isinstance(a, KWaySelection):
            out[f"act{i}"] = a.shares()
        elif isinstance(a, GatedBlend):
            s = float((a.g.detach() > 0).float().mean())
            out[f"act{i}"] = {"param_sigmoid": s, "prelu": 1 - s}
    return out
