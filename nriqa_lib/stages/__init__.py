"""One :class:`~nriqa_lib.stages.registry.Stage` per DVC stage (dvc.yaml runs ``python -m nriqa_lib.cli <stage>``).

A compute stage's module declares ``STAGE`` (its params, data deps, outputs, command-line options) and
``run(p, ...)``, which receives a :class:`nriqa_lib.core.params.ParamsView` of exactly the declared params: reading
anything else raises. The notebook stages (one per table, the data overview, the report) are the entries of
:mod:`nriqa_lib.stages.tables`; each runs one analysis function under its module's ``PARAMS``. dvc.yaml, the CLI
and tests/test_pipeline.py are derived from :func:`~nriqa_lib.stages.registry.registry`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.config import Params
from ..core.params import ParamsView
from ..data.manifest import Manifest, load_dataset
from .registry import Stage, registry

if TYPE_CHECKING:
    from ..backbones import Backbone

__all__ = ["Stage", "registry", "stage", "view", "open_dataset", "backbone"]


def stage(name: str) -> Stage:
    """The registered stage ``name``; an unknown name is refused in one line with the known ones."""
    reg = registry()
    if name not in reg:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(reg)}")
    return reg[name]


def view(p: Params, name: str) -> ParamsView:
    """What stage or notebook ``name`` may read of ``p``."""
    return ParamsView(p, stage(name).params, f"stage {name}")


# Only stages read params (tests/test_layers.py): these two unpack them for the library's loaders.
def open_dataset(p: ParamsView, name: str, decode: bool = False, limited: bool = True, pixels: bool = False) -> Manifest:
    """:func:`~nriqa_lib.data.manifest.load_dataset` with the params' roots, manifest variants and sample
    (``data.roots``, ``data.manifests``, ``data.limit``, ``data.limit_seed``); ``limited=False`` gives the whole
    dataset (published splits are made on it, then restricted); ``pixels``: the caller decodes the images, as
    ``data.exif_transpose`` says (its stage declares that param)."""
    return load_dataset(name, p.data.roots, decode=decode, limit=p.data.limit if limited else 0,
                        limit_seed=p.data.limit_seed, manifest=p.data.manifests.get(name),
                        exif_transpose=p.data.exif_transpose if pixels else True)


def backbone(p: ParamsView, name: str, image_size: int | None = None, dynamic_size: bool = False) -> "Backbone":
    """:func:`~nriqa_lib.backbones.create_backbone` as the params say: ``features.weights`` (local file),
    ``features.pretrained`` (false: seeded random weights, the smoke profile) and ``features.image_size`` (0: the
    backbone's own size; the ``image_size`` argument overrides it, T5's larger squash)."""
    from ..backbones import create_backbone
    f = p.features
    return create_backbone(name, pretrained=f.pretrained, weights=f.weights.get(name),
                           image_size=image_size or f.image_size or None, dynamic_size=dynamic_size)
