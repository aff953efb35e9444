"""Datasets: manifests and their validation, the manifest builder, splits, the embedded synthetic set."""
