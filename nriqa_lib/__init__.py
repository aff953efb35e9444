"""nriqa: a reproducible study of no-reference IQA (P1: arXiv 2509.17374; P2: arXiv 2511.09948).

The flow, one folder per role:
  data/ backbones/ heads/            inputs: manifests and splits, feature extractors, quality heads (registries)
  features train protocol zeroshot   computation: extraction, batched head training, the split protocol, P2
  stages/                            one module per DVC stage (declares the params it reads)
  analysis/                          the tables: pure functions of saved predictions and scores
  reporting/                         export, figures, the report and its verdicts
  config paths io metrics stats      params, file layout, atomic writes, metrics, statistics
See README.md and ../shared/docs/STUDY_SPEC.md.
"""
__version__ = "0.1.0"
