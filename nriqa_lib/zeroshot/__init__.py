"""Training-free IQA: CLIP-IQA, MA-CLIP (P2, arXiv 2511.09948) and the magnitude cue on any backbone.

Every step and constant follows STUDY_SPEC.md section 3 (P2's official code):
- views: all 224x224 windows on a stride-128 grid from (0, 0) (remainders dropped) + one global view,
  a bilinear resize of the whole normalised image to 224x224;
- Q_sim = mean over antonym pairs of softmax(s cos(f, t+), s cos(f, t-))[+], s = exp(logit_scale);
- Q_mag = mean_d ((x_d + 1)^lambda - 1) / lambda, x = |f| / (std(|f|, ddof=1) + 1e-6), log(1 + x) at lambda 0;
- (w_sim, w_mag) = softmax(b_sim + alpha delta, b_mag - alpha delta), delta = Q_sim - Q_mag;
  Q_view = w_sim Q_sim + w_mag Q_mag; image score = mean over views.
f is the image embedding before L2 normalisation. P2 drops the positional embedding of the CLIP
image tower (``pos="drop"``); so does the CLIP-IQA baseline, which runs the whole image at native size in
one pass (pyiqa's ``CLIPIQA.forward`` calls the image tower with ``pos_embedding=False``).

The package: :mod:`.scores` (the equations, numpy) and :mod:`.clip` (the CLIP towers and the cached embeddings);
it re-exports nothing (import the module you use: the scores need no torch).
"""
