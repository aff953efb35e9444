"""Features: decode an image (:mod:`.decode`), make a backbone's test-time view of it (:mod:`.transforms`,
MA-CLIP's grid in :mod:`.views`), extract pooled features in batches (:mod:`.extract`) into the content-keyed,
resumable feature cache (:mod:`.cache`); fine-tuning's squashed pixels (:mod:`.pixels`).

The cache key hashes everything that changes the numbers: backbone identity (name, architecture, weight file
digest, pooling, layer, preprocessing), the test-time view policy and the manifest content (image paths and
sha256). Features are written in chunks so an interrupted run resumes; a finished set is checked (one row per
image, in order) before every use; a file lock lets two processes share one entry.
"""
from .cache import FeatureSet, cache_key, load_feature_set, save_feature_set
from .decode import (DRAFTABLE, ImageDataset, SharedDecodeDataset, decode_notes, draft_request, draft_scale,
                     jpeg_sizes_of, load_image)
from .extract import extract_features, extract_many
from .transforms import ProcessorTransform, TestTime, build_transform
from .views import make_views, view_grid

__all__ = ["build_transform", "view_grid", "make_views", "ImageDataset", "FeatureSet", "cache_key", "extract_features",
           "extract_many", "draft_request", "draft_scale", "jpeg_sizes_of", "SharedDecodeDataset", "save_feature_set",
           "load_feature_set", "load_image", "decode_notes", "DRAFTABLE", "ProcessorTransform", "TestTime"]
