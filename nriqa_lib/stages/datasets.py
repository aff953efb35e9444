"""A stage's dataset as its params say (only stages read params: this unpacks them for the data layer's loader)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..data.manifest import Manifest, load_dataset

if TYPE_CHECKING:
    from ..core.params import ParamsView

__all__ = ["open_dataset"]


def open_dataset(p: ParamsView, name: str, decode: bool = False, limited: bool = True, pixels: bool = False) -> Manifest:
    """:func:`~nriqa_lib.data.manifest.load_dataset` with the params' roots, manifest variants and sample
    (``data.roots``, ``data.manifests``, ``data.limit``, ``data.limit_seed``); ``limited=False`` gives the whole
    dataset (published splits are made on it, then restricted); ``pixels``: the caller decodes the images, as
    ``data.exif_transpose`` says (its stage declares that param)."""
    return load_dataset(name, p.data.roots, decode=decode, limit=p.data.limit if limited else 0,
                        limit_seed=p.data.limit_seed, manifest=p.data.manifests.get(name),
                        exif_transpose=p.data.exif_transpose if pixels else True)
