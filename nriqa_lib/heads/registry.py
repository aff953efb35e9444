"""The registry of predictors (timm/pyiqa habit: one name -> one spec) that every stage and table consults: P1's
presets, the activations, and registered closed-form predictors (ridge). Torch-free: the modules are built by
:mod:`nriqa_lib.heads.mlp` and :mod:`nriqa_lib.heads.activations`."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

# the names import no torch (params checks and analyses only need names; torch's import costs 1.8 s per
# process); the modules they name are built by .activations / .mlp
ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh", "leaky_relu", "silu", "identity", "param_sigmoid", "prelu")

# preset -> (act1, act2); STUDY_SPEC.md section 1. "kway" uses the candidate list given to build_head.
PRESETS: dict[str, tuple[str, str]] = {
    "B": ("relu", "relu"),
    "B_Sig": ("sigmoid", "leaky_relu"),
    "B_Gated": ("gated_blend", "prelu"),
    "B_Gated_gamma": ("gated_blend_gamma", "prelu"),
    "kway": ("kway", "kway"),
}

__all__ = ["ACTIVATIONS", "PRESETS", "SELECTION_HEADS", "PredictorSpec", "get_predictor", "list_predictors",
           "register_predictor"]


@dataclass(frozen=True)
class PredictorSpec:
    """A quality predictor on pooled features: an MLP head (P1's presets or one activation in every hidden
    layer) or a closed-form linear model. ``selection``: learns a per-channel activation choice and reports
    the channel shares (B_Gated, our K-way)."""
    name: str
    kind: Literal["mlp", "linear"]
    selection: bool = False

    @property
    def fixed_activation(self) -> bool:
        return self.kind == "mlp" and not self.selection


_EXTRA: dict[str, PredictorSpec] = {}


def register_predictor(spec: PredictorSpec) -> PredictorSpec:
    """Add a predictor beyond the MLP heads (duplicate names are refused)."""
    if spec.name in _EXTRA or spec.name in PRESETS or spec.name in ACTIVATIONS:
        raise ValueError(f"predictor {spec.name!r} is already registered")
    _EXTRA[spec.name] = spec
    return spec


register_predictor(PredictorSpec("ridge", "linear"))     # ridge regression on standardised features (training/trainer.py)

SELECTION_HEADS = ("B_Gated", "kway")      # the selection heads the study trains (T3): P1's and ours


def list_predictors() -> list[str]:
    return [*PRESETS, *ACTIVATIONS, *_EXTRA]


def get_predictor(name: str) -> PredictorSpec:
    """The spec of a head name: a preset, an activation (the same in every hidden layer) or a registered one."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name in PRESETS:
        return PredictorSpec(name, "mlp", selection=PRESETS[name][0] in ("gated_blend", "gated_blend_gamma", "kway"))
    if name in ACTIVATIONS:
        return PredictorSpec(name, "mlp")
    close = difflib.get_close_matches(name, list_predictors(), n=3, cutoff=0.5)
    raise KeyError(f"unknown head {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                   + f" (presets {', '.join(PRESETS)}, an activation, or {', '.join(_EXTRA)})")
