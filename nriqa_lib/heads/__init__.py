"""P1's MLP heads, its activations and GatedBlend, and our K-way per-channel selection."""
from .activations import ACTIVATIONS, GatedBlend, KWaySelection, ParamSigmoid, get_activation
from .mlp import PRESETS, MLPHead, build_head, selection_shares

__all__ = ["ACTIVATIONS", "GatedBlend", "KWaySelection", "ParamSigmoid", "get_activation", "PRESETS", "MLPHead",
           "build_head", "selection_shares"]
