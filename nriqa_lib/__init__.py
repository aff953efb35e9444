"""nriqa: a reproducible study of no-reference IQA (P1: arXiv 2509.17374; P2: arXiv 2511.09948).

Modules: data (manifests, splits, synthetic set), backbones, features, heads, train, finetune, zeroshot,
metrics, stats, results, tables, plots, report, cli, bench. See README.md and ../shared/docs/STUDY_SPEC.md.
"""
__version__ = "0.1.0"
