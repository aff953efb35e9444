"""Feature extraction: pooled features of a backbone in batches (:mod:`.extract`) into the content-keyed, resumable
feature cache (:mod:`.cache`), whose finished entries are feature sets (:mod:`nriqa_lib.features.sets`). The stages
that run a backbone over a dataset (features, resolution) load it; those that read features do not."""
