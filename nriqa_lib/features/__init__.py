"""Features of an image before and after a backbone: decode it (:mod:`.decode`), make a backbone's test-time view of
it (:mod:`.transforms`, MA-CLIP's grid in :mod:`.views`), and feature sets, the features stages' outputs (:mod:`.sets`,
torch-free). Extraction itself is :mod:`nriqa_lib.extraction`; fine-tuning's squashed pixels
:mod:`nriqa_lib.training.pixels`. Import the module you use: this package re-exports nothing."""
