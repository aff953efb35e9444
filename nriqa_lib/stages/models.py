"""A stage's backbone as its params say (only the stages that build a model import this, so only they depend on the
model code in dvc.yaml)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..backbones.models import create_backbone

if TYPE_CHECKING:
    from ..backbones.models import Backbone
    from ..core.params import ParamsView

__all__ = ["backbone"]


def backbone(p: ParamsView, name: str, image_size: int | None = None, dynamic_size: bool = False,
             seed: int = 0) -> "Backbone":
    """:func:`~nriqa_lib.backbones.models.create_backbone` as the params say: ``features.weights`` (local file),
    ``features.pretrained`` (false: seeded random weights, the smoke profile) and ``features.image_size`` (0: the
    backbone's own size; the ``image_size`` argument overrides it, T5's larger squash); ``seed``: random weights'
    seed (a control's other initialisations)."""
    f = p.features
    return create_backbone(name, pretrained=f.pretrained, weights=f.weights.get(name),
                           image_size=image_size or f.image_size or None, dynamic_size=dynamic_size, seed=seed)
